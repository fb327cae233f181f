package manifest

import (
	"strings"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/storm"
)

func TestParseOnDenyStorm(t *testing.T) {
	head := "apiVersion: coconut/v1\nkind: Workload\nmetadata: {name: team}\nagents:\n  - name: a\n    command: [/bin/true]\n"
	tests := []struct {
		name, field string
		want        storm.Policy
		err         string
	}{
		{name: "absent", field: ""},
		{name: "scalar", field: "    on_deny_storm: quarantine\n", want: storm.Policy{Action: storm.Quarantine}},
		{name: "mapping", field: "    on_deny_storm: {action: kill, rate: 50, window: 500ms}\n",
			want: storm.Policy{Action: storm.Kill, Rate: 50, Window: 500 * time.Millisecond}},
		{name: "rate only", field: "    on_deny_storm: {rate: 10}\n", want: storm.Policy{Rate: 10}},
		{name: "bad action", field: "    on_deny_storm: explode\n", err: "must be throttle, quarantine, kill or none"},
		{name: "bad rate", field: "    on_deny_storm: {rate: 0}\n", err: "on_deny_storm.rate"},
		{name: "bad window", field: "    on_deny_storm: {window: 1ms}\n", err: "must be a duration"},
		{name: "unknown key", field: "    on_deny_storm: {burst: 3}\n", err: "burst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse("t.yaml", []byte(head+tt.field))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Agents[0].Storm; got != tt.want {
				t.Fatalf("on_deny_storm %+v, want %+v", got, tt.want)
			}
		})
	}
}
