// Package keydir is the one loader and watcher behind keytool's trust
// stores (authkeys and knownhosts): it turns "single files plus .d
// directories of keys" into an immutable snapshot, and keeps that snapshot
// current as the files change.
//
// # Data flow
//
//	Config.Sources ──scan──▶ per-file cache ──Convert──▶ Snapshot[T] ──OnReload──▶ store index
//	    ▲                    (stat key, hash,                (files, problems,       (atomic.Pointer)
//	    └── fsnotify events,   entries or problem)             RevocationErr)
//	        periodic rescan
//
// A Source is a single file or a directory. Each visible file in a
// directory is read with jwk.Parse (JWK, JWK Set, PEM bundle or OpenSSH
// lines) and each key is handed to the caller's Convert with its source
// (SourceRef: the Source and its index in Config.Sources, which tells
// sources with equal fields apart), which returns the compact entry the
// store keeps (type T) — the parsed *jwk.Key is not kept. What few
// entries carry beyond it (a name, a comment) Config.Rare returns, and
// the File keeps it beside its Items (File.RareOf), so that T can hold no
// pointer and a file's Items are never read by the garbage collector.
// Dotfiles (which covers Kubernetes' ..data and ..<timestamp> entries and
// atomicfile's .*.tmp), *~, #*#, *.swp and *.tmp names are ignored, and
// names are followed through symlinks, so a ConfigMap or Secret volume
// reads exactly like a plain directory.
//
// # Failing per file, and closed
//
// A file that cannot be read, parsed or converted is skipped and reported
// as a Problem {Path, Line, Member, Err}; the other files still load and
// nothing from the bad file is used. A file of several keys outside a
// revocation source is read entry by entry (jwk.ParseSet): a bad entry is
// a Problem of its own (Entry set, Member "keys[2].x" or its Line) and
// the file's other entries load. A problem in a Source marked
// Revocation sets Snapshot.RevocationErr: the stores then refuse every key.
// Missing files and directories are empty. Unless Config.NoStrictModes is
// set, a file or directory (or a source's parent) writable by group or
// others, or owned by a user other than root or the effective user, is
// refused with a *PermissionError that says the fix.
//
// # Reloading only what changed
//
// Every file's state is cached under its path with a stat key (size, mtime,
// ctime, inode, mode, owner) and the SHA-256 of its content. A rescan
// stats every file and reads only those whose stat key changed; a file
// whose content hash did not change keeps its entries. A reload triggered
// by events looks only at the names the events carried (or at a whole
// directory when the directory itself, an ancestor or a ".." entry
// changed). If nothing changed no snapshot is published.
//
// # Watching
//
// Loader.Watch watches the source directories and the parents of single
// files (never the files, which editors and Kubernetes replace), and the
// nearest existing ancestor of a source that does not exist yet, so that
// its creation is seen. A change (a file renamed in, created, removed) is
// reloaded almost at once: after 2 ms without events (a write-then-rename
// is one change), and no sooner than the last reload's duration after
// it, so that reloading takes at most half a core however busy the
// directory; events meanwhile join that reload. A file
// rewritten in place is reloaded once its writes have been quiet for
// Config.Debounce. A file that fails to load in a reload caused by events
// and was modified less than a second ago is being written: it keeps its
// previous state, and is read again once events have been quiet; still
// failing a second after its last change, it is reported. A full rescan (Config.Rescan) catches lost events and file systems
// without notifications; if a watch cannot be added (inotify limits), that
// is logged and the rescan carries on alone. The watching loaders of a
// process share one inotify instance (sharedwatch.go) unless
// Config.NewWatcher gives one its own. The rescan compares stat data
// without the lock that reloads take, then reloads only the names it found
// changed, so its long walk never delays a reload caused by an event. Problems are logged once when
// they appear, and once when they are resolved. Subscribe tells callers
// about each new snapshot; Close, or cancelling the context, stops every
// goroutine.
//
// # Where things are
//
//	loader.go   Config, Snapshot, Loader: Reload, publish, Subscribe
//	scan.go     listing a directory and stat-ing files under the rule
//	read.go     reading and parsing the files that changed, in parallel
//	rescan.go   the periodic rescan's two steps (compare, then reload)
//	hints.go    what events named, and the names that are never key files
//	watch.go    fsnotify, debouncing, the rescan ticker
//	store.go    Options and Lifecycle, shared by authkeys and knownhosts
//	find.go     Loader.Find, the one fingerprint matcher
//	edit.go     Loader.EditFile, the one rewrite of a key file (locked, atomic)
//	feed.go     Feed: entries from elsewhere than files (etcd), read like a directory
package keydir
