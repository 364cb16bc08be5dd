package schema

import (
	"sync"
	"testing"
	"time"
)

// TestValidateConcurrently: the bridge validates from one goroutine per
// extension; the compiled schemas are shared.
func TestValidateConcurrently(t *testing.T) {
	docs := testDocs(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(docs))
	for range 8 {
		wg.Go(func() {
			for typ, doc := range docs {
				if err := Validate(typ, doc); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkNewAndValidateEvent(b *testing.B) {
	data := CDRCreated{Extension: testExt, PBX: testPBX, Record: testCDR}
	id := EventID(TypeCDRCreated, testPBX, "1001", testCDR.UniqueID)
	raw := testEvent(b, TypeCDRCreated, data)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if _, err := New(TypeCDRCreated, testSource, testSubject, id, testTime, data); err != nil {
			b.Fatal(err)
		}
		if err := ValidateEvent(raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

func BenchmarkEventID(b *testing.B) {
	for b.Loop() {
		EventID(TypeCDRCreated, testPBX, "1001", testCDR.UniqueID)
	}
}
