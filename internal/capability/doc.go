// Package capability parses, prints and compares Coconut capabilities.
//
// A capability is written DOMAIN.VERB:SCOPE, the same on the command line and
// in manifests:
//
//	fs.read:~/projects/dream-team/**   fs.write:/tmp/out/**   fs.exec:/usr/bin/python3
//	net.connect:127.0.0.1:8080         net.bind:[::1]:8000-8010
//	net.connect:unix:/run/app.sock     net.connect:unix:@abstract-name
//	inference:model=llama-*,tokens=5000
//	cap.grant:fs.read:~/projects/**
//	x.acme.email.send                  x.acme.email.send:team-only
//
// Parse is strict: anything it does not understand is refused with an error
// that matches ErrSyntax, ErrUnknownDomain, ErrUnknownVerb or ErrScope under
// errors.Is. Accepted capabilities are canonical: Parse(c.String()) == c.
//
// The package does no I/O. MatchPath, MatchAddr and Covers answer "does this
// capability allow that" and answer false whenever they cannot be sure, since a
// false "yes" would widen what an agent may do.
package capability
