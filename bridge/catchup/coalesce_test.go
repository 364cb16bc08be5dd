package catchup

import (
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

func TestCoalescerCountsMatches(t *testing.T) {
	var c coalescer
	// A notification for record 1 starts a catch-up; records 1, 2 and 3
	// are published, 2 and 3 in the same second; the notifications of 2
	// and 3 arrive during it.
	if c.notified(100) {
		t.Fatal("nothing published yet, and the notification is covered")
	}
	c.begin()
	c.published([]pbx.CDR{{ID: 1, Timestamp: 100}, {ID: 2, Timestamp: 105}, {ID: 3, Timestamp: 105}})
	c.end()
	if !c.notified(105) || !c.notified(105) {
		t.Fatal("the notifications of records 2 and 3 are not covered")
	}
	// A third record of that second was made after the query: its
	// notification is not covered, nor is a repeat of record 1's (it
	// started the catch-up and claims none of its records).
	if c.notified(105) {
		t.Error("a third notification of one second matched two records")
	}
	if c.notified(100) {
		t.Error("the notification that started the catch-up was matched again")
	}
	if c.notified(0) {
		t.Error("a notification without a timestamp matched")
	}
	// The next catch-up forgets the previous one's records.
	c.notified(150)
	c.begin()
	c.end()
	c.notified(190)
	c.begin()
	c.published([]pbx.CDR{{ID: 4, Timestamp: 190}, {ID: 5, Timestamp: 200}})
	c.end()
	if c.notified(105) || !c.notified(200) {
		t.Error("a catch-up's records outlived the next one")
	}
}

// TestCoalescerOnlyAfterNotifications: records that came without a
// notification (a first start's history, a reconnect's gap, the poll)
// answer no later notification: one of the same second would otherwise
// wait for the next poll.
func TestCoalescerOnlyAfterNotifications(t *testing.T) {
	var c coalescer
	c.gapped() // the socket opened
	c.begin()
	c.published([]pbx.CDR{{ID: 1, Timestamp: 100}, {ID: 2, Timestamp: 100}})
	c.end()
	if c.notified(100) {
		t.Error("a record of a gap's catch-up answered a notification")
	}
	// Asked for by a notification and by the poll alike: the same.
	c.notified(300)
	c.gapped()
	c.begin()
	c.published([]pbx.CDR{{ID: 3, Timestamp: 300}, {ID: 4, Timestamp: 300}})
	c.end()
	if c.notified(300) {
		t.Error("a record of a catch-up the poll asked for answered a notification")
	}
	// A notification's catch-up covers, for coalesceWindow only.
	c.notified(400)
	c.begin()
	c.published([]pbx.CDR{{ID: 5, Timestamp: 400}, {ID: 6, Timestamp: 401}})
	c.end()
	c.until = time.Now().Add(-time.Millisecond)
	if c.notified(401) {
		t.Error("a record answered a notification after the window")
	}
}

func TestCoalescerIsBounded(t *testing.T) {
	var c coalescer
	for i := range 10 * coalesceKeep {
		c.notified(int64(i + 1))
	}
	if len(c.asked) > coalesceKeep {
		t.Errorf("%d notifications remembered, want at most %d", len(c.asked), coalesceKeep)
	}
	c.begin()
	recs := make([]pbx.CDR, 3*coalesceKeep)
	for i := range recs {
		recs[i] = pbx.CDR{ID: i + 1, Timestamp: int64(100000 + i)}
	}
	c.published(recs[:coalesceKeep+1])
	c.published(recs[coalesceKeep+1:])
	if len(c.recent) > coalesceKeep {
		t.Errorf("%d published records remembered, want at most %d", len(c.recent), coalesceKeep)
	}
	c.end()
	if !c.notified(recs[len(recs)-1].Timestamp) {
		t.Error("the newest record is not covered")
	}
}
