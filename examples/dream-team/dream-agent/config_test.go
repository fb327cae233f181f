package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	home := map[string]string{"HOME": "/home/u"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // substring; "" = success
		check   func(t *testing.T, c config)
	}{
		{
			name: "defaults",
			args: []string{"--role", "coder"},
			env:  home,
			check: func(t *testing.T, c config) {
				if c.Project != "/home/u/projects/dream-team" {
					t.Errorf("Project = %q", c.Project)
				}
				if c.Notes != "/home/u/projects/dream-team/notes/coder" {
					t.Errorf("Notes = %q", c.Notes)
				}
				if c.Duration != 10*time.Minute || c.Interval != 3*time.Second || c.InferEvery != 5 {
					t.Errorf("Duration, Interval, InferEvery = %v, %v, %d", c.Duration, c.Interval, c.InferEvery)
				}
				if c.Model != "sim" || c.ProbeSSH {
					t.Errorf("Model, ProbeSSH = %q, %v", c.Model, c.ProbeSSH)
				}
				if c.tag() != "coder" {
					t.Errorf("tag = %q", c.tag())
				}
			},
		},
		{
			name: "everything set",
			args: []string{"--role", "planner", "--project", "/p", "--notes", "~/n", "--duration", "0", "--interval", "100ms", "--probe-ssh"},
			env: map[string]string{
				"HOME": "/h", "COCONUT_AID": "42", "COCONUT_AGENT_NAME": "plan/../ner-1",
				"COCONUT_AGENT_CLASS": "lead", "OPENAI_BASE_URL": "http://x/v1/", "COCONUT_MODEL": "m",
			},
			check: func(t *testing.T, c config) {
				if c.Project != "/p" || c.Notes != "/h/n" || c.Duration != 0 || c.Interval != 100*time.Millisecond || !c.ProbeSSH {
					t.Errorf("config = %+v", c)
				}
				if c.AID != "42" || c.Class != "lead" || c.BaseURL != "http://x/v1" || c.Model != "m" {
					t.Errorf("env config = %+v", c)
				}
				// The name cannot take a note outside the notes dir.
				if c.tag() != "planner-1" {
					t.Errorf("tag = %q", c.tag())
				}
			},
		},
		{name: "no role", args: nil, env: home, wantErr: "--role is required"},
		{name: "bad role", args: []string{"--role", "boss"}, env: home, wantErr: `unknown role "boss"`},
		{name: "zero interval", args: []string{"--role", "coder", "--interval", "0"}, env: home, wantErr: "--interval must be positive"},
		{name: "negative duration", args: []string{"--role", "coder", "--duration", "-1s"}, env: home, wantErr: "--duration must not be negative"},
		{name: "bad infer-every", args: []string{"--role", "coder", "--infer-every", "0"}, env: home, wantErr: "--infer-every"},
		{name: "unknown flag", args: []string{"--role", "coder", "--nope"}, env: home, wantErr: "nope"},
		{name: "extra argument", args: []string{"--role", "coder", "extra"}, env: home, wantErr: `unexpected argument "extra"`},
		{name: "no home for default project", args: []string{"--role", "coder"}, env: nil, wantErr: "$HOME is not set"},
		{name: "tilde user refused", args: []string{"--role", "coder", "--project", "~bob/x"}, env: home, wantErr: "only ~ and ~/"},
		{name: "probe needs home", args: []string{"--role", "coder", "--project", "/p", "--probe-ssh"}, env: nil, wantErr: "--probe-ssh needs $HOME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, envOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if !errors.Is(err, errUsage) {
					t.Errorf("err = %v, want errUsage", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add("--role", "coder", "/home/u", "x")
	f.Add("--project", "~/p", "", "../../etc")
	f.Add("--interval", "-1s", "/", "")
	f.Fuzz(func(t *testing.T, a, b, home, name string) {
		env := map[string]string{"HOME": home, "COCONUT_AGENT_NAME": name}
		c, err := parseConfig([]string{a, b, "--role", "researcher"}, envOf(env))
		if err != nil {
			return
		}
		if c.Interval <= 0 || c.Duration < 0 {
			t.Fatalf("accepted bad timing: %+v", c)
		}
		if tag := c.tag(); tag == "" || strings.ContainsAny(tag, "/.") {
			t.Fatalf("unsafe tag %q", tag)
		}
	})
}
