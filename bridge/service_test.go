package bridge

import (
	"errors"
	"strings"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/schema"
)

// cdrQueryBodies are requests at and around every rule of a CDR query.
var cdrQueryBodies = []struct {
	body string
	ok   bool
}{
	{``, true},
	{`{}`, true},
	{`{"page":1,"size":100,"status":3,"sortBy":"id","orderBy":"asc","filter":"2000"}`, true},
	{`{"page":2.0}`, true},
	{`{"filter":null}`, true},
	{`{"filter":""}`, true},
	{`{"filter":"` + strings.Repeat("1", 64) + `"}`, true},
	{`{"filter":"` + strings.Repeat("1", 65) + `"}`, false},
	{`{"filter":"12\u00073"}`, false},
	{`{"filter":"12\u007f3"}`, false},
	{`{"filter":"12\u00853"}`, false},
	{`{"filter":"+44 20 7946 0958"}`, true},
	{`{"page":0}`, false},
	{`{"page":-1}`, false},
	{`{"page":1.5}`, false},
	{`{"size":0}`, false},
	{`{"size":101}`, false},
	{`{"status":-1}`, false},
	{`{"status":4}`, false},
	{`{"sortBy":"name"}`, false},
	{`{"orderBy":"up"}`, false},
	{`{"page":"1"}`, false},
	{`{"extra":1}`, false},
	{`[]`, false},
	{`{"page":1}{"page":2}`, false},
}

// TestCDRQueryRulesAgree: the request parser (which calls
// pbx.CDRQuery.Validate, where the rules live) and the JSON Schema that
// documents the request accept exactly the same requests.
func TestCDRQueryRulesAgree(t *testing.T) {
	for _, tc := range cdrQueryBodies {
		_, err := parseCDRQuery([]byte(tc.body))
		var ae *apiError
		if err != nil && (!errors.As(err, &ae) || ae.code != codeBadRequest) {
			t.Errorf("%s: %v, want a 400", tc.body, err)
		}
		if (err == nil) != tc.ok {
			t.Errorf("parse %s: err %v, want ok %v", tc.body, err, tc.ok)
		}
		if strings.TrimSpace(tc.body) == "" {
			continue // no body is no document: the defaults
		}
		if verr := schema.Validate(schema.TypeCDRQueryRequest, []byte(tc.body)); (verr == nil) != tc.ok {
			t.Errorf("schema %s: %v, want ok %v", tc.body, verr, tc.ok)
		}
	}
}

// FuzzParseCDRQuery: no request crashes the parser, and what it accepts is
// a valid query and a valid request by the schema.
func FuzzParseCDRQuery(f *testing.F) {
	for _, tc := range cdrQueryBodies {
		f.Add(tc.body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		q, err := parseCDRQuery([]byte(body))
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.code != codeBadRequest {
				t.Fatalf("%q: %v, want a 400", body, err)
			}
			return
		}
		if err := q.Validate(); err != nil {
			t.Fatalf("%q accepted as %+v, which does not validate: %v", body, q, err)
		}
		if strings.TrimSpace(body) != "" {
			if err := schema.Validate(schema.TypeCDRQueryRequest, []byte(body)); err != nil {
				t.Fatalf("%q accepted, but the schema refuses it: %v", body, err)
			}
		}
	})
}
