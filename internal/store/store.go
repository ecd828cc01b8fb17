// Package store keeps v6bridge's state as one small file per entry under a
// directory: a write replaces one file atomically (temp file, fsync, rename,
// fsync of the directory), so a crash leaves either the old or the new entry
// and a change costs the same whatever the number of entries.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Dir is a directory of JSON entries, one file per key.
type Dir struct {
	path string
	q    *Quarantine
}

// Quarantine is where Each moves entries it cannot read or decode, so that
// one truncated file does not stop a whole start: the entry is set aside
// for a human to look at, reported, and the rest is loaded.
type Quarantine struct {
	// Dir receives the bad files, named after the store directory and the
	// file, e.g. "networks-abc.json.1700000000". Created when needed.
	Dir string
	// Report is told of each entry moved (may be nil).
	Report func(file, movedTo string, err error)
}

// SetQuarantine makes Each set unreadable entries aside into q instead of
// failing. nil restores failing.
func (d *Dir) SetQuarantine(q *Quarantine) { d.q = q }

// Open creates the directory if needed and returns it.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	return &Dir{path: path}, nil
}

// OpenEach opens (creating) the directories names under root, in order.
func OpenEach(root string, names ...string) ([]*Dir, error) {
	out := make([]*Dir, len(names))
	for i, n := range names {
		d, err := Open(filepath.Join(root, n))
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// fileName maps a key to a file name. Keys may contain ':' and '/' (IPv6
// prefixes); they are replaced so every key is one plain file.
func fileName(key string) string {
	r := strings.NewReplacer("/", "_", ":", "-")
	return r.Replace(key) + ".json"
}

// Put writes v as the entry key, replacing any previous one atomically.
func (d *Dir) Put(key string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	return WriteFileAtomic(filepath.Join(d.path, fileName(key)), append(b, '\n'))
}

// Get reads the entry key into v. A missing entry is fs.ErrNotExist.
func (d *Dir) Get(key string, v any) error {
	b, err := os.ReadFile(filepath.Join(d.path, fileName(key)))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %q: %w", key, err)
	}
	return nil
}

// Delete removes the entry key; a missing entry is not an error.
func (d *Dir) Delete(key string) error {
	err := os.Remove(filepath.Join(d.path, fileName(key)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}

// Each decodes every entry of d into a fresh T, in file name order, and
// passes it to fn. An entry that cannot be read or decoded is an error
// naming the file, or, with a quarantine set, moved there and reported;
// never skipped silently.
func Each[T any](d *Dir, fn func(v *T) error) error {
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return fmt.Errorf("list %q: %w", d.path, err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		path := filepath.Join(d.path, n)
		v := new(T)
		b, err := os.ReadFile(path)
		if err != nil {
			err = fmt.Errorf("read %q: %w", path, err)
		} else if err = json.Unmarshal(b, v); err != nil {
			err = fmt.Errorf("decode %q: %w", path, err)
		}
		if err != nil {
			if d.q == nil {
				return err
			}
			if qerr := d.quarantine(path, err); qerr != nil {
				return fmt.Errorf("%w (and could not set it aside: %w)", err, qerr)
			}
			continue
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

// quarantine moves the bad entry path into d.q.Dir and reports it.
func (d *Dir) quarantine(path string, cause error) error {
	if err := os.MkdirAll(d.q.Dir, 0o700); err != nil {
		return err
	}
	to := filepath.Join(d.q.Dir, fmt.Sprintf("%s-%s.%d", filepath.Base(d.path), filepath.Base(path), time.Now().UnixNano()))
	if err := os.Rename(path, to); err != nil {
		return err
	}
	if d.q.Report != nil {
		d.q.Report(path, to, cause)
	}
	return nil
}

// WriteFileAtomic writes data to path so that readers and crashes see either
// the old or the new content.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %q: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %q: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %q: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
