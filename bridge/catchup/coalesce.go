package catchup

import (
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// A 20049 says that a record changed, not which (its personal_cdr holds a
// timestamp and a number, not an id). One that arrives while a catch-up is
// under way, for a record that catch-up then publishes, needs no second
// scan; without this, calls arriving during a catch-up cost two
// searchpersonal queries each instead of one.
//
// The match is on the timestamp only: the reference's sample 20049 carries
// the extension's own number, the simulator's the other party's, so the
// number cannot be compared. Matches are counted, not merely looked up:
// each published record answers at most one notification, and the
// notifications that started (or were folded into) a catch-up answer none
// of its records, so two records of one second are told apart. A
// notification that matches nothing (a real PBX whose 20049 timestamp is
// not the record's, a record made after the query) starts a catch-up as
// before: a wrong guess costs a query, never a record, and even a false
// match (a lying PBX) only delays its record to the next notification or
// the periodic poll, because the cursor, not the match, says what is
// published.
//
// Records that came without a notification (history on a first start, a
// gap after a reconnect or an overflow, what the periodic poll finds)
// would match any later notification of the same second, and delay its
// record to the next poll. So only a catch-up that notifications alone
// asked for covers anything, and only for coalesceWindow after it ended:
// the notifications it answers are those already on their way.
type coalescer struct {
	asked    map[int64]int // notifications for the pending catch-up, by timestamp
	gap      bool          // the pending catch-up was asked for by something else too
	inflight map[int64]int // those the catch-up under way answers
	covers   bool          // the catch-up under way may cover notifications to come
	recent   []int64       // the newest records the catch-up under way published
	covered  map[int64]int // the last catch-up's records no notification has claimed yet
	until    time.Time     // when covered is forgotten
}

// coalesceWindow is how long after a catch-up its records answer
// notifications: those on their way when it ended arrive within
// milliseconds.
const coalesceWindow = 2 * time.Second

// coalesceKeep bounds what a catch-up remembers: the notifications waiting
// behind it are at most the session's event buffer, and are for its
// newest records.
const coalesceKeep = 2 * 256

// notified reports whether a 20049 with the timestamp ts is for a record
// the last catch-up published; if not, it is counted towards the next.
func (c *coalescer) notified(ts int64) bool {
	if ts > 0 && c.covered[ts] > 0 && time.Now().Before(c.until) {
		c.covered[ts]--
		return true
	}
	if len(c.asked) < coalesceKeep {
		if c.asked == nil {
			c.asked = map[int64]int{}
		}
		c.asked[ts]++
	}
	return false
}

// gapped says that a catch-up is due for another reason than a
// notification: a socket (re)opened, an overflow, the periodic poll.
func (c *coalescer) gapped() { c.gap = true }

// begin marks a catch-up starting: it answers the notifications asked so
// far, and what the previous one published is forgotten.
func (c *coalescer) begin() {
	c.covers = !c.gap && len(c.asked) > 0
	c.inflight, c.asked, c.covered, c.gap = c.asked, nil, nil, false
	c.recent = c.recent[:0]
}

// published notes records the catch-up under way published, oldest first.
func (c *coalescer) published(recs []pbx.CDR) {
	if len(recs) > coalesceKeep {
		recs = recs[len(recs)-coalesceKeep:]
	}
	for _, r := range recs {
		c.recent = append(c.recent, r.Timestamp)
	}
	if over := len(c.recent) - coalesceKeep; over > 0 {
		c.recent = append(c.recent[:0], c.recent[over:]...)
	}
}

// end marks the catch-up finished (or failed: what it published stays
// published): its records not claimed by the notifications it answered
// are covered for the notifications still to come.
func (c *coalescer) end() {
	c.covered, c.until = nil, time.Now().Add(coalesceWindow)
	if !c.covers {
		c.recent = c.recent[:0]
	}
	for _, ts := range c.recent {
		if c.inflight[ts] > 0 {
			c.inflight[ts]--
			continue
		}
		if c.covered == nil {
			c.covered = map[int64]int{}
		}
		c.covered[ts]++
	}
	c.inflight = nil
	c.recent = c.recent[:0]
}
