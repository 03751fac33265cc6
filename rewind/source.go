package rewind

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/wal"
)

// Source is what walship learns about the source server over SQL.
type Source struct {
	SysID      uint64
	Version    pgdata.Version
	InRecovery bool
	TLI        uint32  // the timeline it writes (primary) or follows (standby)
	ControlTLI uint32  // the timeline in its control file, which pg_rewind reads
	LSN        wal.LSN // current insert location (primary) or replay location (standby)
}

// connect opens a connection to the source.
func connect(ctx context.Context, connString string) (*pgx.Conn, error) {
	return pgserver.Connect(ctx, connString, pgserver.ConnectOptions{AppName: "walship-rewind"})
}

// InspectSource connects to the source and reads its identity, role and
// position.
func InspectSource(ctx context.Context, connString string) (*Source, error) {
	conn, err := connect(ctx, connString)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	return inspect(ctx, conn)
}

func inspect(ctx context.Context, conn *pgx.Conn) (*Source, error) {
	info, err := pgserver.ReadInfo(ctx, conn)
	if err != nil {
		return nil, err
	}
	pos, err := pgserver.ReadPosition(ctx, conn, info.InRecovery)
	if err != nil {
		return nil, err
	}
	ctl, err := pgserver.ControlTimeline(ctx, conn)
	if err != nil {
		return nil, err
	}
	return &Source{SysID: info.SystemID, Version: info.Version, InRecovery: info.InRecovery,
		TLI: pos.Timeline, ControlTLI: ctl, LSN: pos.LSN}, nil
}

// Checkpoint runs CHECKPOINT on the source, so that its control file shows
// the timeline a recent promotion started (pg_rewind reads the control
// file, and would otherwise see the old timeline and find nothing to do).
func Checkpoint(ctx context.Context, connString string) (*Source, error) {
	conn, err := connect(ctx, connString)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return nil, fmt.Errorf("CHECKPOINT on the source: %w", err)
	}
	return inspect(ctx, conn)
}
