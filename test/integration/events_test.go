package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
)

// TestEventStream: GET /v1/events gives root every row after since, then
// live rows; a user only the rows of their own agents (their `coconut
// audit tail -f`, which reads the same stream); bad parameters are 400 with
// the error JSON; a restart ends the stream and a new one from the last
// seq repeats and loses nothing.
func TestEventStream(t *testing.T) {
	e := newEnv(t)
	uid, home := e.demo()
	cred := &syscall.Credential{Uid: uid, Gid: uid}

	// The demo user's live view, as that user.
	tail := exec.Command(filepath.Join(bins, "coconut"), "audit", "tail", "-f", "--json")
	tail.Env = append(os.Environ(), "COCONUT_SOCKET="+e.sock)
	tail.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := tail.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { tail.Process.Kill(); tail.Wait() }()
	userRows := make(chan row, 1000)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var r row
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				userRows <- r
			}
		}
		close(userRows)
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := client.New(e.sock)
	st, err := c.Events(ctx, 0, client.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Next() || st.Record().Seq != 1 {
		t.Fatalf("first row: %+v, %v", st.Record(), st.Err())
	}

	rootAgent := mustAID(t, e.must("agent", "run", "--user", "root", "--name", "roots", "--workdir", "/", "--", "/bin/true"))
	o, errs, code := e.cliAs(cred, "agent", "run", "--name", "nosy-reviewer", "--workdir", "/",
		"--cap", "fs.read:~/projects/**", "--", "/bin/bash", "-c", "read -r l < ~/.ssh/id_ed25519")
	if code != 0 {
		t.Fatalf("demo agent: %d %s", code, errs)
	}
	nosy := mustAID(t, o)
	e.waitState(nosy, "Terminated-clean")
	e.waitState(rootAgent, "Terminated-clean")

	// Root sees every row, in order, ending with the deny.
	var deny api.Record
	last := st.Record().Seq
	for deny.Seq == 0 {
		if !st.Next() {
			t.Fatalf("stream ended: %v", st.Err())
		}
		r := st.Record()
		if r.Seq != last+1 {
			t.Fatalf("root's stream: row %d after %d", r.Seq, last)
		}
		last = r.Seq
		if r.AID == nosy && r.Type == "cap.deny" {
			deny = r
		}
	}
	if deny.Object != home+"/.ssh/id_ed25519" || deny.Result != "deny" || deny.Errno != 134 || deny.Hash == "" {
		t.Fatalf("deny row %+v", deny)
	}
	same := e.rows("--aid", strconv.FormatUint(nosy, 10), "--type", "cap.deny")
	if len(same) != 1 || same[0].Seq != deny.Seq || same[0].Hash != deny.Hash {
		t.Fatalf("the stream's row and the query's differ: %+v vs %+v", deny, same)
	}

	// The user's stream: only their agent's rows, the deny among them.
	deadline := time.After(10 * time.Second)
	for got := false; !got; {
		select {
		case r, ok := <-userRows:
			if !ok {
				t.Fatal("the user's tail ended")
			}
			if r.AID != nosy {
				t.Fatalf("the user saw a row of agent %d: %+v", r.AID, r)
			}
			got = r.Seq == deny.Seq
		case <-deadline:
			t.Fatal("the user's tail never showed the deny")
		}
	}

	// Bad parameters: 400 with the error JSON; another's agent: 404.
	for path, want := range map[string]int{
		"/v1/events?since=x":         400,
		"/v1/events?result=maybe":    400,
		"/v1/events?follow=1":        400,
		"/v1/events?type=a*b":        400,
		"/v1/events?since=1&since=2": 400,
	} {
		code, body := e.raw("GET", path, nil, nil)
		var eb api.ErrorBody
		if code != want || json.Unmarshal([]byte(body), &eb) != nil || eb.Error.Code != api.CodeInvalid {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	_, errs, code = e.cliAs(cred, "audit", "tail", "-f", "--aid", strconv.FormatUint(rootAgent, 10))
	if code != 1 || !strings.Contains(errs, "no agent") {
		t.Errorf("user following root's agent: exit %d %q", code, errs)
	}

	// A restart ends the stream; resuming from Last loses and repeats nothing.
	e.stop(syscall.SIGTERM)
	for st.Next() {
		if st.Record().Seq != last+1 {
			t.Fatalf("row %d after %d", st.Record().Seq, last)
		}
		last = st.Record().Seq
	}
	if st.Err() == nil || st.Last != last {
		t.Fatalf("after the daemon stopped: err %v, Last %d (want %d)", st.Err(), st.Last, last)
	}
	e.start()
	st, err = c.Events(ctx, st.Last, client.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for len(types) < 2 && st.Next() {
		r := st.Record()
		if r.Seq != last+1 {
			t.Fatalf("resumed stream: row %d after %d", r.Seq, last)
		}
		last = r.Seq
		types = append(types, r.Type)
	}
	if strings.Join(types, " ") != "daemon.stop daemon.start" {
		t.Fatalf("after the restart: %v", types)
	}
}
