// Package instance makes sure one v6bridge runs on one state directory and
// that the links it makes can be told from another instance's: the state
// directory holds an identity (a random id written at the first start) and
// a lock file, flocked while the plugin runs and naming its pid, socket and
// state directory so a second instance can say who holds it.
package instance

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/store"
)

// File names under the state directory.
const (
	IdentityFile = "instance.json"
	LockFile     = "lock"
)

// MarkPrefix starts the alias v6bridge gives its bridges and host veths:
// "v6bridge:" + the instance id + " " + the state directory it was made from.
const MarkPrefix = "v6bridge:"

// ErrLocked says another process holds the state directory.
var ErrLocked = errors.New("state directory in use by another v6bridge")

// Identity is the record in IdentityFile.
type Identity struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// StateDir is where the directory was when the identity was made, as
	// the host sees it when known (see HostPath).
	StateDir string `json:"state_dir"`
}

// Holder is what the lock file says about the process holding it.
type Holder struct {
	PID      int    `json:"pid"`
	Socket   string `json:"socket"`
	StateDir string `json:"state_dir"`
	Since    string `json:"since"`
}

func (h Holder) String() string {
	return fmt.Sprintf("pid %d, socket %s, state directory %s, since %s", h.PID, h.Socket, h.StateDir, h.Since)
}

// Lock is a held lock on a state directory.
type Lock struct{ f *os.File }

// Acquire takes the lock on stateDir (creating it) without waiting. If
// another process holds it, the error wraps ErrLocked and names the holder
// as its lock file records it.
func Acquire(stateDir string, me Holder) (*Lock, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %q: %w", stateDir, err)
	}
	path := filepath.Join(stateDir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %q: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			var h Holder
			b, _ := os.ReadFile(path)
			if json.Unmarshal(b, &h) == nil && h.PID != 0 {
				return nil, fmt.Errorf("%w (%s): stop it first, or give this one another STATE_DIR and SOCKET", ErrLocked, h)
			}
			return nil, fmt.Errorf("%w (lock %s held, holder unknown)", ErrLocked, path)
		}
		return nil, fmt.Errorf("lock %q: %w", path, err)
	}
	b, _ := json.Marshal(me)
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(append(b, '\n'), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %q: record holder: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock. The file stays (removing it would race a
// starting instance).
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// LoadIdentity reads the identity of stateDir, creating it at the first
// start; created reports that. hostDir is recorded as where it lives.
func LoadIdentity(stateDir, hostDir string) (id Identity, created bool, err error) {
	path := filepath.Join(stateDir, IdentityFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &id); err != nil || !validID(id.ID) {
			return id, false, fmt.Errorf("identity %q is unreadable (%v): restore it from a backup; deleting it makes this state directory a new instance that will not touch the links of the old one", path, err)
		}
		return id, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return id, false, fmt.Errorf("identity %q: %w", path, err)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return id, false, fmt.Errorf("new identity: %w", err)
	}
	id = Identity{ID: hex.EncodeToString(r[:]), Created: time.Now().UTC().Truncate(time.Second), StateDir: hostDir}
	b, _ = json.MarshalIndent(id, "", "  ")
	if err := store.WriteFileAtomic(path, append(b, '\n')); err != nil {
		return id, false, fmt.Errorf("new identity: %w", err)
	}
	return id, true, nil
}

func validID(s string) bool {
	if len(s) != 16 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Mark is the link alias of instance id whose state is in dir.
func Mark(id, dir string) string {
	m := MarkPrefix + id
	if dir != "" {
		m += " " + dir
	}
	// IFALIASZ is 256 with the terminating NUL.
	if len(m) > 255 {
		m = m[:255]
	}
	return m
}

// ParseMark splits a link alias made by Mark; ok is false for any other
// alias (none, or a user's).
func ParseMark(alias string) (id, dir string, ok bool) {
	rest, found := strings.CutPrefix(alias, MarkPrefix)
	if !found {
		return "", "", false
	}
	id, dir, _ = strings.Cut(rest, " ")
	if !validID(id) {
		return "", "", false
	}
	return id, dir, true
}

// HostPath returns where dir comes from on the host when it is a bind
// mount (a managed plugin's state mount): the mount's root within its
// filesystem, from mountinfo ("/var/lib/v6bridge-b" for state.source=
// /var/lib/v6bridge-b on the root filesystem). Otherwise dir itself.
func HostPath(mountinfo []byte, dir string) string {
	dir = filepath.Clean(dir)
	for _, line := range strings.Split(string(mountinfo), "\n") {
		f := strings.Fields(line)
		// id parent major:minor root mountpoint ...
		if len(f) < 5 || unescape(f[4]) != dir {
			continue
		}
		if root := unescape(f[3]); root != "/" && root != dir {
			return root
		}
	}
	return dir
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and
// backslash.
func unescape(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}
