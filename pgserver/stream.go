package pgserver

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walship/walship/wal"
)

// The physical replication protocol as a WAL receiver speaks it, on a
// connection from ConnectReplication (PostgreSQL docs, "Streaming
// Replication Protocol"), on top of jackc/pglogrepl: slots, timeline
// history, START_REPLICATION, the server's XLogData and keepalive messages
// and the standby's status updates.

// slotName is what PostgreSQL accepts as a replication slot's name.
var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// CheckSlotName refuses a name the server would refuse (lower-case
// letters, digits and underscores, at most 63).
func CheckSlotName(name string) error {
	if !slotName.MatchString(name) {
		return fmt.Errorf("replication slot name %q: use lower-case letters, digits and underscores, at most 63", name)
	}
	return nil
}

// ServerMajor is the server's major version from what it reported at
// connection (server_version), 0 when unknown.
func ServerMajor(conn *pgconn.PgConn) int {
	digits := strings.FieldsFunc(conn.ParameterStatus("server_version"), func(r rune) bool { return r < '0' || r > '9' })
	if len(digits) == 0 {
		return 0
	}
	major, _ := strconv.Atoi(digits[0])
	return major
}

// ErrSlotExists is matched by CreatePhysicalSlot's error for a slot that
// exists already.
var ErrSlotExists = errors.New("replication slot exists")

// CreatePhysicalSlot creates a physical replication slot that reserves WAL
// from now on (CREATE_REPLICATION_SLOT ... PHYSICAL RESERVE_WAL).
func CreatePhysicalSlot(ctx context.Context, conn *pgconn.PgConn, name string) error {
	if err := CheckSlotName(name); err != nil {
		return err
	}
	_, err := conn.Exec(ctx, "CREATE_REPLICATION_SLOT "+name+" PHYSICAL RESERVE_WAL").ReadAll()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object
		return fmt.Errorf("%w: %s", ErrSlotExists, name)
	}
	if err != nil {
		return fmt.Errorf("creating the replication slot %s: %w", name, err)
	}
	return nil
}

// Show reads one setting on a replication connection (SHOW).
func Show(ctx context.Context, conn *pgconn.PgConn, name string) (string, error) {
	res, err := conn.Exec(ctx, "SHOW "+name).ReadAll()
	if err != nil {
		return "", fmt.Errorf("SHOW %s: %w", name, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return "", fmt.Errorf("SHOW %s: unexpected answer", name)
	}
	return string(res[0].Rows[0][0]), nil
}

// TimelineHistory is the history file of timeline tli as the server has
// it (TIMELINE_HISTORY): its name and content, byte for byte.
func TimelineHistory(ctx context.Context, conn *pgconn.PgConn, tli uint32) (wal.Name, []byte, error) {
	res, err := pglogrepl.TimelineHistory(ctx, conn, int32(tli))
	if err != nil {
		return wal.Name{}, nil, fmt.Errorf("TIMELINE_HISTORY %d: %w", tli, err)
	}
	n, err := wal.ParseName(res.FileName)
	if err != nil || n.Kind != wal.KindHistory || n.Timeline != tli {
		return wal.Name{}, nil, fmt.Errorf("TIMELINE_HISTORY %d: the server named the file %q", tli, res.FileName)
	}
	return n, res.Content, nil
}

// ErrEndOfTimeline is matched when the server has no more WAL to send on
// the timeline asked for: it switched to a newer one at the position the
// EndOfTimeline error gives.
var ErrEndOfTimeline = errors.New("end of timeline")

// EndOfTimeline says where the timeline streamed ended.
type EndOfTimeline struct {
	Next  uint32  // the next timeline, when the server said (0 otherwise)
	Start wal.LSN // where it starts
}

func (e *EndOfTimeline) Error() string {
	if e.Next == 0 {
		return "the server ended the timeline's stream"
	}
	return fmt.Sprintf("the timeline ends at %s, where timeline %d starts", e.Start, e.Next)
}

// Unwrap makes errors.Is(err, ErrEndOfTimeline) true.
func (e *EndOfTimeline) Unwrap() error { return ErrEndOfTimeline }

// StartStream asks for WAL from start on timeline tli through the physical
// slot (START_REPLICATION SLOT ... PHYSICAL ... TIMELINE ...). When the
// server has nothing to send there (start is where the timeline ended), the
// error is an *EndOfTimeline.
func StartStream(ctx context.Context, conn *pgconn.PgConn, slot string, tli uint32, start wal.LSN) error {
	err := pglogrepl.StartReplication(ctx, conn, slot, pglogrepl.LSN(start),
		pglogrepl.StartReplicationOptions{Mode: pglogrepl.PhysicalReplication, Timeline: int32(tli)})
	if next, pos, ok := pglogrepl.IsErrEndTimeline(err); ok {
		return &EndOfTimeline{Next: uint32(next), Start: wal.LSN(pos)}
	}
	if err != nil {
		return fmt.Errorf("START_REPLICATION at %s on timeline %d: %w", start, tli, err)
	}
	return nil
}

// Message is one message of the server in a replication stream.
type Message struct {
	// Data: WAL bytes from Start (an XLogData message); nil for a
	// keepalive.
	Start wal.LSN
	Data  []byte
	// ServerEnd is the end of the server's WAL as it was when it sent the
	// message; ServerTime when it sent it.
	ServerEnd  wal.LSN
	ServerTime time.Time
	// ReplyRequested: a keepalive that wants a status update at once.
	ReplyRequested bool
}

// ReadMessage reads the next message of the stream. Data is the
// receiver's own copy. When the server ends the stream (at the end of a
// timeline it switched away from), ReadMessage answers it as the protocol
// asks, reads the server's last results, and returns an *EndOfTimeline.
func ReadMessage(ctx context.Context, conn *pgconn.PgConn) (Message, error) {
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return Message{}, err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return Message{}, err
				}
				return Message{Start: wal.LSN(x.WALStart), Data: append([]byte(nil), x.WALData...),
					ServerEnd: wal.LSN(x.ServerWALEnd), ServerTime: x.ServerTime}, nil
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				k, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return Message{}, err
				}
				return Message{ServerEnd: wal.LSN(k.ServerWALEnd), ServerTime: k.ServerTime, ReplyRequested: k.ReplyRequested}, nil
			}
		case *pgproto3.CopyDone:
			return Message{}, endStream(ctx, conn)
		case *pgproto3.ErrorResponse:
			return Message{}, pgconn.ErrorResponseToPgError(m)
		}
	}
}

// endStream answers the server's CopyDone with ours and reads what follows
// (the next timeline and where it starts, then the end of the command).
func endStream(ctx context.Context, conn *pgconn.PgConn) error {
	conn.Frontend().Send(&pgproto3.CopyDone{})
	if err := conn.Frontend().Flush(); err != nil {
		return err
	}
	end := &EndOfTimeline{}
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			if len(m.Values) == 2 {
				next, err1 := strconv.ParseUint(string(m.Values[0]), 10, 32)
				pos, err2 := wal.ParseLSN(string(m.Values[1]))
				if err1 == nil && err2 == nil {
					end.Next, end.Start = uint32(next), pos
				}
			}
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			return end
		}
	}
}

// SendStatus sends a standby status update: written is what the receiver
// has, flushed what is durable (a synchronous standby's acknowledgement:
// report only what is durable), which is also reported as applied (so that
// synchronous_commit = remote_apply waits for the same). The slot keeps the
// WAL from flushed on.
func SendStatus(conn *pgconn.PgConn, written, flushed wal.LSN, replyRequested bool) error {
	return pglogrepl.SendStandbyStatusUpdate(context.Background(), conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(max(written, flushed)),
		WALFlushPosition: pglogrepl.LSN(flushed),
		WALApplyPosition: pglogrepl.LSN(flushed),
		ClientTime:       time.Now(),
		ReplyRequested:   replyRequested,
	})
}
