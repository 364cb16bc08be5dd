package pbx_test

import (
	"encoding/json"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// frameOf builds a frame as the PBX sends it: msg encoded as a string.
func frameOf(b *testing.B, typ int, msg any) []byte {
	b.Helper()
	inner, err := json.Marshal(msg)
	if err != nil {
		b.Fatal(err)
	}
	frame, err := json.Marshal(map[string]any{"type": typ, "msg": string(inner)})
	if err != nil {
		b.Fatal(err)
	}
	return frame
}

// BenchmarkDecodeFrame decodes the frames of the hot path: a CDR change
// (20049), a recording status (20048, a Notice), and the heartbeat
// response.
func BenchmarkDecodeFrame(b *testing.B) {
	frames := []struct {
		name  string
		frame []byte
	}{
		{"20049", frameOf(b, pbx.TypeCDRChanged, map[string]any{"ext_num": "1001",
			"personal_cdr": map[string]any{"date": "", "time": "", "timestamp": 1693201380, "number": "5551234", "talk_duration": 42}})},
		{"20048", frameOf(b, pbx.TypeRecordStatus, map[string]any{"record_status": "start", "call_feature": "record",
			"caller_origin_number": "5551234", "callee_origin_number": "1001",
			"caller_sip_callid": "0000002a-bench@127.0.0.1", "callee_sip_callid": "0000002b-bench@127.0.0.1"})},
		{"heartbeat", []byte("heartbeat response")},
	}
	for _, f := range frames {
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(f.frame)))
			for i := 0; i < b.N; i++ {
				if _, reason := pbx.DecodeFrame(f.frame); reason != "" {
					b.Fatal(reason)
				}
			}
		})
	}
}
