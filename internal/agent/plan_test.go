package agent

import "testing"

func TestNameFromCommand(t *testing.T) {
	tests := []struct{ command, want string }{
		{"/usr/bin/python3.11", "python3-11"},
		{"/usr/bin/python3", "python3"},
		{"/usr/bin/X11", "x11"},
		{"/opt/My_Tool..v2", "my-tool-v2"},
		{"/bin/-dash-", "dash"},
		{"/bin/...", "run"},
		{"/bin/ünïcode", "n-code"},
		{"/bin/" + string(make([]byte, 0)) + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bcd", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			got := nameFromCommand(tt.command)
			if got != tt.want {
				t.Fatalf("nameFromCommand(%q) = %q, want %q", tt.command, got, tt.want)
			}
			if !namePattern.MatchString(got) {
				t.Fatalf("%q is not a valid name", got)
			}
		})
	}
}

func FuzzNameFromCommand(f *testing.F) {
	for _, s := range []string{"/usr/bin/python3.11", "/a/b", "", "/", "/x/---", "/x/A.B.C"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, command string) {
		if got := nameFromCommand(command); !namePattern.MatchString(got) {
			t.Fatalf("nameFromCommand(%q) = %q: not a valid name", command, got)
		}
	})
}
