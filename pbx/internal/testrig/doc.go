// Package testrig is what the tests of the PBX clients (pbx and
// pbx/openapi) share: a simulator the test closes, a logger into the
// test's log, waits with a deadline, recorders safe for several goroutines,
// and the check that no goroutine of the package under test outlives its
// tests. Only tests import it.
package testrig
