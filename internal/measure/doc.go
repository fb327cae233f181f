// Package measure hashes what an agent will execute and hands back exactly
// the bytes it hashed, so there is no window between measuring and running
// (the time-of-check/time-of-use race of "hash the path, then exec the
// path"). The file is copied once into a sealed memfd while it is hashed;
// the memfd can no longer change, and the agent is exec'd from it. Sealed
// copies are shared by digest, so 31 agents running one binary hold one
// copy.
package measure
