// Command dream-agent is the small program each agent of the "dream team"
// demo workload runs. It does plausible, visible work for a while: a
// researcher reads project files and writes notes about them, a coder writes
// generated snippets, a reviewer reviews the others' notes and a planner keeps
// a plan of what the others produced. Everything it does is logged to stdout,
// which coconutd captures per agent (`coconut agent logs AID`).
//
// It is built to meet Coconut's enforcement, not to avoid it: every file
// operation that fails is logged with its errno NUMBER (a capability denial is
// errno 134, which has no name in any libc) and the agent keeps going, since a
// denied operation is an expected event of the demo, not a crash. With
// --probe-ssh it tries to read ~/.ssh/id_ed25519 and says whether anything
// stopped it, never printing the content.
//
// Inference goes through the OpenAI-compatible endpoint named by
// OPENAI_BASE_URL, or through coconutd's broker over the Unix socket named by
// COCONUT_BROKER_SOCKET (base path /v1).
//
// Exit status: 0 after --duration or on SIGTERM/SIGINT, 2 on bad usage.
//
// Build it static: CGO_ENABLED=0 go build ./examples/dream-team/dream-agent
package main
