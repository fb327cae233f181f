package audit

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestQueryFilters(t *testing.T) {
	c := openT(t, t.TempDir(), Options{SegmentBytes: 2000})
	defer c.Close()
	all := fill(t, c, 40) // rec(i): AID 100+i%3, 4 types, 2 caps, allow/deny alternate
	aid := uint64(101)
	count := func(f func(Record) bool) int {
		n := 0
		for _, r := range all {
			if f(r) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		name string
		q    Query
		want func(Record) bool
	}{
		{"all", Query{}, func(Record) bool { return true }},
		{"aid", Query{AID: &aid}, func(r Record) bool { return r.AID == 101 }},
		{"type", Query{Type: "agent.state"}, func(r Record) bool { return r.Type == "agent.state" }},
		{"type prefix", Query{Type: "agent.*"}, func(r Record) bool { return r.Type != "trust.add" }},
		{"star", Query{Type: "*"}, func(Record) bool { return true }},
		{"cap", Query{Cap: "fs.read:/data/1"}, func(r Record) bool { return r.Cap == "fs.read:/data/1" }},
		{"result", Query{Result: ResultDeny}, func(r Record) bool { return r.Result == ResultDeny }},
		{"since", Query{Since: t0.Add(30 * time.Second)}, func(r Record) bool { return r.Seq > 30 }},
		{"until", Query{Until: t0.Add(5 * time.Second)}, func(r Record) bool { return r.Seq <= 5 }},
		{"after seq", Query{AfterSeq: 33}, func(r Record) bool { return r.Seq > 33 }},
		{"combined", Query{AID: &aid, Result: ResultAllow, Type: "agent.*"}, func(r Record) bool {
			return r.AID == 101 && r.Result == ResultAllow && r.Type != "trust.add"
		}},
		{"none", Query{Type: "nope"}, func(Record) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Query(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if n := count(tt.want); len(got) != n {
				t.Fatalf("%d records, want %d", len(got), n)
			}
			var last uint64
			for _, r := range got {
				if !tt.want(r) || r.Seq <= last {
					t.Fatalf("record %+v out of filter or order", r)
				}
				if r.Hash != all[r.Seq-1].Hash {
					t.Fatalf("seq %d hash %s, appended %s", r.Seq, r.Hash, all[r.Seq-1].Hash)
				}
				last = r.Seq
			}
		})
	}
}

func TestQueryLimitAndPaging(t *testing.T) {
	c := openT(t, t.TempDir(), Options{SegmentBytes: 1500})
	defer c.Close()
	fill(t, c, 25)
	var after uint64
	var pages [][]Record
	for {
		page, err := c.Query(Query{AfterSeq: after, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		pages = append(pages, page)
		after = page[len(page)-1].Seq
	}
	if len(pages) != 3 || len(pages[2]) != 5 || pages[1][0].Seq != 11 {
		t.Fatalf("pages %d, last %d", len(pages), len(pages[len(pages)-1]))
	}
}

func TestQueryRejects(t *testing.T) {
	c := openT(t, t.TempDir(), Options{})
	defer c.Close()
	tests := []struct {
		name string
		q    Query
	}{
		{"negative limit", Query{Limit: -1}},
		{"limit too large", Query{Limit: MaxLimit + 1}},
		{"star inside", Query{Type: "agent.*.x"}},
		{"until before since", Query{Since: t0, Until: t0.Add(-time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Query(tt.q); !errors.Is(err, ErrBadQuery) {
				t.Fatalf("Query = %v, want ErrBadQuery", err)
			}
			if _, err := c.Follow(context.Background(), tt.q); !errors.Is(err, ErrBadQuery) {
				t.Fatalf("Follow = %v, want ErrBadQuery", err)
			}
		})
	}
}
