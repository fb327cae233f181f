package bench

import (
	"errors"
	"testing"
)

func TestParseProbe(t *testing.T) {
	loop := `{"op":"loop","iters":3,"errnos":{"0":2,"134":1},"mono_base_ns":1000,"start_ns":[0,50,60],"dur_ns":[40,45,5],"errno":[0,0,134]}`
	tests := []struct {
		name    string
		out     string
		op      string
		wantErr bool
		iters   int
	}{
		{"open", `{"op":"open","iters":5,"ns_per_op":4100.5,"errnos":{"0":5}}`, "open", false, 5},
		{"log noise around the result", "coconut-trampoline: started\n{\"ready\":true}\n" + loop + "\nbye\n", "loop", false, 3},
		{"last result wins", `{"op":"open","iters":1,"errnos":{"0":1}}` + "\n" + `{"op":"open","iters":2,"errnos":{"0":2}}`, "open", false, 2},
		{"no result", "{\"ready\":true}\n", "loop", true, 0},
		{"empty", "", "open", true, 0},
		{"other op", `{"op":"connect","iters":1,"errnos":{"0":1}}`, "open", true, 0},
		{"counts do not add up", `{"op":"open","iters":5,"errnos":{"0":4}}`, "open", true, 0},
		{"negative iters", `{"op":"open","iters":-1,"errnos":{}}`, "open", true, 0},
		{"negative ns", `{"op":"open","iters":1,"ns_per_op":-3,"errnos":{"0":1}}`, "open", true, 0},
		{"errno key not canonical", `{"op":"open","iters":1,"errnos":{"01":1}}`, "open", true, 0},
		{"errno key too big", `{"op":"open","iters":1,"errnos":{"5000":1}}`, "open", true, 0},
		{"truncated json", `{"op":"open","iters":1,"errnos":{"0":1}`, "open", true, 0},
		{"loop lengths differ", `{"op":"loop","iters":2,"errnos":{"0":2},"start_ns":[0,1],"dur_ns":[1],"errno":[0,0]}`, "loop", true, 0},
		{"loop negative delta", `{"op":"loop","iters":2,"errnos":{"0":2},"start_ns":[0,-1],"dur_ns":[1,1],"errno":[0,0]}`, "loop", true, 0},
		{"loop errno counts disagree", `{"op":"loop","iters":2,"errnos":{"0":1,"134":1},"start_ns":[0,1],"dur_ns":[1,1],"errno":[0,0]}`, "loop", true, 0},
		{"loop overflow", `{"op":"loop","iters":2,"errnos":{"0":2},"mono_base_ns":9223372036854775800,"start_ns":[0,100],"dur_ns":[1,1],"errno":[0,0]}`, "loop", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseProbe([]byte(tt.out), tt.op)
			if tt.wantErr {
				if !errors.Is(err, errProbeOutput) {
					t.Fatalf("err = %v, want errProbeOutput", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Iters != tt.iters {
				t.Errorf("iters %d, want %d", r.Iters, tt.iters)
			}
		})
	}
	r, err := parseProbe([]byte(loop), "loop")
	if err != nil {
		t.Fatal(err)
	}
	ops := r.ops()
	want := []probeOp{{1000, 1040, 0}, {1050, 1095, 0}, {1110, 1115, 134}}
	for i := range want {
		if ops[i] != want[i] {
			t.Errorf("op %d = %+v, want %+v", i, ops[i], want[i])
		}
	}
}

func TestAnalyzeRevoke(t *testing.T) {
	// The call runs from 100 to 200 (ns).
	tests := []struct {
		name                          string
		ops                           []probeOp
		before, during, after, denied int
		returnToDenyUs                float64
		wantErr                       error
		other                         int
	}{
		{"clean", []probeOp{{10, 20, 0}, {120, 130, 0}, {150, 3200, 134}, {3300, 3400, 134}}, 1, 1, 0, 2, 3.0, nil, 0},
		{"denied before the return", []probeOp{{10, 20, 0}, {120, 150, 134}}, 1, 0, 0, 1, -0.1, nil, 0},
		{"success after the return is counted", []probeOp{{10, 20, 0}, {250, 260, 0}, {300, 1300, 134}}, 1, 0, 1, 1, 1.1, nil, 0},
		{"other errors are kept apart", []probeOp{{10, 20, 0}, {250, 260, 13}, {300, 1300, 134}}, 1, 0, 0, 1, 1.1, nil, 1},
		{"no deny", []probeOp{{10, 20, 0}, {250, 260, 0}}, 1, 0, 1, 0, 0, errNoDeny, 0},
		{"empty", nil, 0, 0, 0, 0, 0, errNoDeny, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := analyzeRevoke(tt.ops, 100, 200)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if st.SucceededBefore != tt.before || st.SucceededDuring != tt.during || st.OpsAfterRevoke != tt.after || st.Denied != tt.denied {
				t.Errorf("got before %d during %d after %d denied %d", st.SucceededBefore, st.SucceededDuring, st.OpsAfterRevoke, st.Denied)
			}
			if err == nil && st.ReturnToFirstDenyUs != tt.returnToDenyUs {
				t.Errorf("return → deny %v µs, want %v", st.ReturnToFirstDenyUs, tt.returnToDenyUs)
			}
			n := 0
			for _, c := range st.OtherErrnos {
				n += c
			}
			if n != tt.other {
				t.Errorf("other errnos %v", st.OtherErrnos)
			}
		})
	}
	if _, err := analyzeRevoke(nil, 200, 100); err == nil || errors.Is(err, errNoDeny) {
		t.Errorf("a call that returned before it started: err = %v", err)
	}
}

// FuzzParseProbe: any output is either refused with errProbeOutput or
// yields ops in time order, one per counted iteration; never a panic.
func FuzzParseProbe(f *testing.F) {
	f.Add([]byte(`{"op":"open","iters":5,"ns_per_op":4100.5,"errnos":{"0":5}}`), "open")
	f.Add([]byte(`{"op":"loop","iters":3,"errnos":{"0":2,"134":1},"mono_base_ns":1000,"start_ns":[0,50,60],"dur_ns":[40,45,5],"errno":[0,0,134]}`), "loop")
	f.Add([]byte("{\"ready\":true}\n{\"op\":\"deny-open\",\"iters\":2,\"errnos\":{\"134\":2}}\n"), "deny-open")
	f.Add([]byte(`{"op":"loop","iters":1,"errnos":{"0":1},"start_ns":[0],"dur_ns":[9223372036854775807],"errno":[0]}`), "loop")
	f.Add([]byte(`{"op":`), "open")
	f.Fuzz(func(t *testing.T, out []byte, op string) {
		r, err := parseProbe(out, op)
		if err != nil {
			if !errors.Is(err, errProbeOutput) {
				t.Fatalf("error not wrapping errProbeOutput: %v", err)
			}
			return
		}
		if r.Op != op {
			t.Fatalf("op %q, asked %q", r.Op, op)
		}
		if r.Start == nil {
			return
		}
		ops := r.ops()
		if len(ops) != r.Iters {
			t.Fatalf("%d ops for %d iters", len(ops), r.Iters)
		}
		for i, o := range ops {
			if o.End < o.Start || i > 0 && o.Start < ops[i-1].Start {
				t.Fatalf("op %d out of order: %+v", i, o)
			}
		}
	})
}
