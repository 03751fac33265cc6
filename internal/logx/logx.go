// Package logx holds what every walship library needs of logging: the
// libraries log through the *slog.Logger they are given (the programs make
// it, in cliutil), never through slog's default, and a nil one means
// nowhere.
package logx

import "log/slog"

// Or is l, or a logger that writes nowhere when l is nil.
func Or(l *slog.Logger) *slog.Logger {
	if l == nil {
		return discard
	}
	return l
}

var discard = slog.New(slog.DiscardHandler)
