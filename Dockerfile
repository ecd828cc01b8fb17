# The plugin's rootfs: the static binary and the directories config.json
# mounts onto. `make plugin` assembles the same tree without an engine;
# with one: docker build -t v6bridge-rootfs . && docker create --name r v6bridge-rootfs
#           && docker export r | tar -x -C plugin/build/rootfs
FROM scratch
COPY bin/v6bridge /v6bridge
COPY plugin/rootfs-skel/ /
ENTRYPOINT ["/v6bridge", "serve"]
