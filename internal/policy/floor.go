package policy

import (
	"path/filepath"
	"strings"

	"github.com/coconut-os/coconut/internal/capability"
)

// FloorPaths is the Landlock floor's form of a ceiling: the trees and
// files it allows to read, write (read-write) and execute (and read).
type FloorPaths struct{ Read, Write, Exec []string }

// CompileFloor turns a ceiling and the baseline into the Landlock floor.
//
// Coarser than Decide: Landlock attaches rules to existing inodes and
// knows no globs, so each fs scope becomes its longest glob-free directory
// prefix (or the file it names), and paths for which exists is false are
// left out (a write scope must exist at spawn). It is built from the
// ceiling, not the bundle, so that grants up to the ceiling need no new
// domain; and the baseline's exec entries are exec rights here. What the
// floor allows beyond the bundle is the seccomp supervisor's to decide
// (it calls Decide); when no supervisor runs, grants beyond the floor are
// refused (enforce.beyondFloor). It never allows less than Decide on the
// ceiling: read is implied by write and exec in both.
func CompileFloor(ceiling []capability.Cap, base Baseline, exists func(string) bool) FloorPaths {
	var f FloorPaths
	add := func(dst *[]string, p string) {
		if exists(p) {
			*dst = append(*dst, p)
		}
	}
	for _, p := range base.Read {
		add(&f.Read, p)
	}
	for _, p := range base.Write {
		add(&f.Write, p)
	}
	for _, p := range base.Exec {
		add(&f.Exec, p)
	}
	for _, c := range ceiling {
		switch c.Name() {
		case "fs.read":
			add(&f.Read, globFree(c.Scope))
		case "fs.write":
			add(&f.Write, globFree(c.Scope))
		case "fs.exec":
			add(&f.Exec, globFree(c.Scope))
		}
	}
	return f
}

// globFree returns the longest prefix of an fs scope without glob
// characters, cut at a path component.
func globFree(scope string) string {
	parts := strings.Split(scope, "/")
	for i, p := range parts {
		if strings.ContainsAny(p, "*") {
			out := strings.Join(parts[:i], "/")
			if out == "" {
				return "/"
			}
			return out
		}
	}
	return filepath.Clean(scope)
}
