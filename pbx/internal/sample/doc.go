// Package sample thins out repeated warnings, so that a PBX that floods a
// socket with garbage (or answers with pages of odd fields) does not flood
// the log too, while the counters stay exact.
package sample
