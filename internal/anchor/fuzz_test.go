package anchor

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func FuzzDecodeJournal(f *testing.F) {
	e1 := Entry{Size: 10, Root: cp(0, 1).Root, Time: time.Unix(5, 0)}.record()
	e2 := Entry{Size: 20, Root: cp(0, 2).Root, Time: time.Unix(6, 0)}.record()
	f.Add([]byte{})
	f.Add(e1)
	f.Add(append(append([]byte(nil), e1...), e2...))
	f.Add(append(append([]byte(nil), e2...), e1...)) // sizes go backwards
	f.Add(e1[:30])
	f.Fuzz(func(t *testing.T, b []byte) {
		ents, good, torn, err := DecodeJournal(b)
		if err != nil {
			return
		}
		if good > int64(len(b)) || (!torn && good != int64(len(b))) || int(good) != len(ents)*EntrySize {
			t.Fatalf("good %d torn %v len %d entries %d", good, torn, len(b), len(ents))
		}
		var re []byte
		for _, e := range ents {
			re = append(re, e.record()...)
		}
		if !bytes.Equal(re, b[:good]) {
			t.Fatal("entries do not re-encode to the good prefix")
		}
	})
}

func FuzzDecodeSeals(f *testing.F) {
	s0 := Seal{Epoch: 0, Size: 10}.record()
	s1 := Seal{Epoch: 1, Size: 20}.record()
	f.Add([]byte{})
	f.Add(append(append([]byte(nil), s0...), s1...))
	f.Add(s1)
	f.Add(s0[:50])
	f.Fuzz(func(t *testing.T, b []byte) {
		seals, good, torn, err := DecodeSeals(b)
		if err != nil {
			return
		}
		if !torn && good != int64(len(b)) || int(good) != len(seals)*SealSize {
			t.Fatalf("good %d torn %v len %d seals %d", good, torn, len(b), len(seals))
		}
		for i, s := range seals {
			if s.Epoch != uint64(i) {
				t.Fatalf("seal %d has epoch %d", i, s.Epoch)
			}
		}
	})
}

func FuzzDecodeKey(f *testing.F) {
	f.Add(encodeKey(3, cp(0, 7).Root))
	f.Add([]byte("COCOFSK1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		epoch, k, err := DecodeKey(b)
		if err == nil && !bytes.Equal(encodeKey(epoch, k), b) {
			t.Fatal("accepted key does not re-encode")
		}
	})
}

func TestFSSErasesOldKey(t *testing.T) {
	dir := t.TempDir()
	f, seedHex, err := OpenFSS(dir, dir)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := ParseSeed(seedHex)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 3; i++ {
		if err := f.Record(cp(i, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	kb, _ := os.ReadFile(filepath.Join(dir, KeyName))
	k := seed
	for i := 0; i < 3; i++ {
		if bytes.Contains(kb, k[:]) {
			t.Fatalf("key of epoch %d is still in %s", i, KeyName)
		}
		k = evolve(k)
	}
	epoch, cur, err := DecodeKey(kb)
	if err != nil || epoch != 3 || cur != k {
		t.Fatalf("key file: epoch %d err %v, want epoch 3 and k_3", epoch, err)
	}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"hex", seedHex, true},
		{"file", filepath.Join(dir, SeedName), true},
		{"short", "abcd", false},
		{"not hex", string(bytes.Repeat([]byte("zz"), 32)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSeed(tt.in)
			if (err == nil) != tt.ok || (tt.ok && got != seed) {
				t.Fatalf("ParseSeed(%q) = %x, %v", tt.in, got, err)
			}
		})
	}
}
