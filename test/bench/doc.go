// Package bench holds GuildNet's benchmark programs. Each is a `main` that
// starts its own local control plane, measures, and prints numbers with
// the ratios that the issues set goals for; `make bench` runs them. They
// are programs, not timed tests: a slow machine prints slower numbers, it
// does not fail a build.
package bench
