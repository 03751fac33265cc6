// Package check tells whether a server's WAL archiving into a walship
// repository works, end to end, the way pgbackrest check does, for cron or
// a monitoring agent: the server's archive settings and archiver, a forced
// segment switch that must reach the repository, the repository's identity,
// how fresh it is, whether its newest base backup restores and nothing is
// missing since, and whether a second server writes into it. Each finding
// has a monitoring-plugin status (OK, WARNING, CRITICAL, UNKNOWN). The same
// state is written as Prometheus metrics (metrics.go).
package check

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/repo"
)

// Status is a monitoring plugin's verdict; its value is the plugin's exit
// status.
type Status int

const (
	OK Status = iota
	Warning
	Critical
	Unknown
)

func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	}
	return "UNKNOWN"
}

// rank orders statuses by how bad they are: a check that could not be
// made (UNKNOWN) is worse than a warning, better than a known failure.
func (s Status) rank() int {
	switch s {
	case Warning:
		return 1
	case Unknown:
		return 2
	case Critical:
		return 3
	}
	return 0
}

// Worse returns the worse of two statuses.
func Worse(a, b Status) Status {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// MarshalText writes the status by name in JSON.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Finding is one thing check looked at.
type Finding struct {
	Check   string `json:"check"` // a stable name: archive_mode, switch, age, ...
	Status  Status `json:"status"`
	Message string `json:"message"`
}

func (f Finding) String() string { return f.Status.String() + " " + f.Check + ": " + f.Message }

// Defaults of Options.
const (
	DefaultTimeout = 60 * time.Second
	DefaultMaxAge  = 15 * time.Minute
	defaultPoll    = 250 * time.Millisecond
)

// Options say what to check.
type Options struct {
	// Connect checks the server at ConnString, a libpq connection string
	// or URL ("" takes libpq's defaults and PG* environment variables);
	// without it the repository is checked alone.
	Connect    bool
	ConnString string
	// DataDir is the server's data directory, when check runs beside it:
	// its postmaster.pid, and its .ready files without a connection.
	DataDir string
	// Switch forces a segment switch on a primary and waits for that
	// segment in the repository.
	Switch bool
	// Timeout bounds that wait (0: DefaultTimeout).
	Timeout time.Duration
	// MaxAge is how old the newest archived segment, or the oldest one
	// waiting to be archived, may be (0: DefaultMaxAge).
	MaxAge time.Duration
	// TailGrace is catalog.SecondWriters' grace (0: its default).
	TailGrace time.Duration
	// Poll is how often the repository is looked at while waiting.
	Poll time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Slot is walship receive's replication slot: its connection, lag and
	// the WAL its slot keeps are checked ("": no receiver).
	Slot string
}

func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Poll == 0 {
		o.Poll = defaultPoll
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Report is what Run found.
type Report struct {
	Status   Status    `json:"status"`
	Findings []Finding `json:"findings"`
	// Server is what was read from the server (nil without one).
	Server *Server `json:"server,omitempty"`
	// Catalog is the repository as scanned (nil when it could not be).
	Catalog *catalog.Catalog `json:"-"`
	// Ready is the server's .ready backlog, from SQL or the data
	// directory; nil when neither could be read.
	Ready *Backlog  `json:"-"`
	Time  time.Time `json:"time"`

	connect   bool          // a server was to be checked
	tailGrace time.Duration // as checked
}

func (r *Report) add(check string, s Status, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Check: check, Status: s, Message: fmt.Sprintf(format, args...)})
}

// finish puts the findings of the worst status first, each status in
// the order they were made, and sets the report's status to the worst.
func (r *Report) finish() {
	slices.SortStableFunc(r.Findings, func(a, b Finding) int { return cmp.Compare(b.Status.rank(), a.Status.rank()) })
	r.Status = OK
	for _, f := range r.Findings {
		r.Status = Worse(r.Status, f.Status)
	}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
}

// Of returns the findings of one check.
func (r *Report) Of(check string) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

// MarshalJSON keeps the server's positions readable.
func (s *Server) MarshalJSON() ([]byte, error) {
	type plain Server
	return json.Marshal(struct {
		*plain
		LSN      string `json:"lsn"`
		Received string `json:"received_lsn,omitempty"`
	}{(*plain)(s), s.LSN.String(), lsnOrEmpty(s.Received)})
}

func lsnOrEmpty(l interface{ String() string }) string {
	if s := l.String(); s != "0/0" {
		return s
	}
	return ""
}

// Run checks the server (with o.Connect) and the repository r. Everything
// wrong is a finding, a server that cannot be reached or read an UNKNOWN
// one (its checks could not be made).
func Run(ctx context.Context, r *repo.Repo, o Options) *Report {
	o = o.withDefaults()
	rep := &Report{Time: o.Now(), connect: o.Connect, tailGrace: o.TailGrace}
	if o.Connect {
		if err := runServer(ctx, rep, r, o); err != nil {
			rep.add("server", Unknown, "cannot check the server: %v", err)
		}
	}
	if rep.Ready == nil && o.DataDir != "" {
		if b, err := pgdata.ReadyFiles(o.DataDir); err == nil {
			rep.Ready = &Backlog{Count: b.Count, Oldest: b.Oldest, OldestTime: b.OldestTime}
		}
	}
	checkRepo(ctx, rep, r, o)
	checkReceiver(rep, o)
	rep.finish()
	return rep
}

// runServer connects to the server and checks it.
func runServer(ctx context.Context, rep *Report, r *repo.Repo, o Options) error {
	conn, err := connect(ctx, o.ConnString)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	srv, err := probe(ctx, conn)
	if err != nil {
		return err
	}
	rep.Server = srv
	if o.Slot != "" {
		srv.Receiver, srv.ReceiverErr = readReceiver(ctx, conn, o.Slot)
	}
	checkServer(ctx, conn, rep, r, o)
	return nil
}

func connect(ctx context.Context, connString string) (*pgx.Conn, error) {
	return pgserver.Connect(ctx, connString, pgserver.ConnectOptions{AppName: "walship check"})
}
