package storm

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Policy
		bad  bool
	}{
		{in: "throttle", want: Policy{Action: Throttle}},
		{in: "quarantine,rate=50", want: Policy{Action: Quarantine, Rate: 50}},
		{in: "kill, rate=5, window=500ms", want: Policy{Action: Kill, Rate: 5, Window: 500 * time.Millisecond}},
		{in: "none", want: Policy{Action: None}},
		{in: "explode", bad: true},
		{in: "throttle,rate=-1", bad: true},
		{in: "throttle,rate=x", bad: true},
		{in: "throttle,window=1ms", bad: true},
		{in: "throttle,burst=3", bad: true},
		{in: "throttle,rate", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if back, err := Parse(got.Or(Default).String()); err != nil || back != got.Or(Default) {
				t.Fatalf("String does not read back: %q: %v, %v", got.Or(Default).String(), back, err)
			}
		})
	}
}

func TestDetector(t *testing.T) {
	p := Policy{Action: Quarantine, Rate: 10, Window: time.Second} // a storm: more than 10 in a window
	var d Detector
	t0 := time.Unix(1000, 0)
	for i := 0; i < 10; i++ {
		if _, ok := d.Add(1, t0.Add(time.Duration(i)*time.Millisecond), p); ok {
			t.Fatalf("storm at deny %d, rate allows 10", i+1)
		}
	}
	s, ok := d.Add(1, t0.Add(20*time.Millisecond), p)
	if !ok || s.Denies != 11 {
		t.Fatalf("11th deny: %v %v, want a storm of 11", s, ok)
	}
	// A storm starts a new window: 10 more are within the rate, the
	// 11th fires again (a lasting storm is acted on again at once).
	if _, ok := d.Add(10, t0.Add(30*time.Millisecond), p); ok {
		t.Fatal("10 denies after a storm fired again")
	}
	if s, ok := d.Add(1, t0.Add(31*time.Millisecond), p); !ok || s.Denies != 11 || s.Over != 11*time.Millisecond {
		t.Fatalf("a lasting storm: %+v %v, want 11 denies over 11ms", s, ok)
	}
	// A quiet window starts afresh.
	if _, ok := d.Add(5, t0.Add(2*time.Second), p); ok {
		t.Fatal("5 denies in a new window fired")
	}
	var off Detector
	if _, ok := off.Add(1<<40, t0, Policy{Action: None, Rate: 1, Window: time.Second}); ok {
		t.Fatal("action none fired")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"throttle", "kill,rate=3,window=1s", "none,window=", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		if err := p.Check(); err != nil {
			t.Fatalf("Parse(%q) gave %v, which Check refuses: %v", s, p, err)
		}
	})
}
