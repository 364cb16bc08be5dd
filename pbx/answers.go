package pbx

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// answerDecoder is an answer type with rules of its own on top of
// decodeLoose. An error fails the call (wrapping ErrPBXAPI).
type answerDecoder interface {
	decodeAnswer(data []byte) ([]FieldProblem, error)
}

// decodeAnswer decodes a successful API answer into out loosely and
// reports every field it could not read.
func (c *Client) decodeAnswer(ep string, data []byte, out any) error {
	var problems []FieldProblem
	var err error
	if d, ok := out.(answerDecoder); ok {
		problems, err = d.decodeAnswer(data)
	} else {
		problems = decodeLoose(data, out)
	}
	c.reportProblems(ep, problems)
	return err
}

// indexes matches the list indexes of a field path.
var indexes = regexp.MustCompile(`\[[0-9]+\]`)

// reportProblems counts (Hooks.DecodeProblem) and logs the fields of a PBX
// body that could not be read. endpoint is the API endpoint
// ("cdr/searchpersonal") or "socket:<type>" for a notification. The log
// names the field and the JSON kind the PBX sent, never the value, and is
// sampled per endpoint and field (list indexes aside): a page of a hundred
// odd records is one line.
func (c *Client) reportProblems(endpoint string, problems []FieldProblem) {
	for _, p := range problems {
		if c.cfg.Hooks.DecodeProblem != nil {
			c.cfg.Hooks.DecodeProblem(endpoint, p.Field)
		}
		kind := "decode " + endpoint + " " + indexes.ReplaceAllString(p.Field, "[]")
		if ok, suppressed := c.warns.Allow(kind, time.Now()); ok {
			attrs := []any{"endpoint", endpoint, "field", p.Field, "json_kind", p.Kind}
			if suppressed > 0 {
				attrs = append(attrs, "suppressed", suppressed)
			}
			c.log.Warn("pbx field of an unexpected type, read as zero", attrs...)
		}
	}
}

// decodeAnswer adds searchpersonal's rules to decodeLoose: a total_number
// that is not a whole number becomes -1 (a consumer must take a negative
// total for an anomaly, not for "no records"); a personal_cdr_list that is
// present but not a list fails the call (absent or null is an empty list),
// since reading it as empty would silently lose a page. A record with an
// unusable id keeps ID 0, and stays in the list so that the page keeps the
// size the PBX served.
func (r *CDRResult) decodeAnswer(data []byte) ([]FieldProblem, error) {
	problems := decodeLoose(data, r)
	for _, p := range problems {
		switch p.Field {
		case rootField:
			return problems, fmt.Errorf("pbx %scdr/searchpersonal: answer is a JSON %s, not an object: %w", apiPrefix, p.Kind, ErrPBXAPI)
		case "total_number":
			r.TotalNumber = -1
		case "personal_cdr_list":
			return problems, fmt.Errorf("pbx %scdr/searchpersonal: personal_cdr_list is a JSON %s, not a list: %w", apiPrefix, p.Kind, ErrPBXAPI)
		}
	}
	return problems, nil
}

// decodeCDRResult decodes a searchpersonal answer body (its fuzz target).
func decodeCDRResult(data []byte) (*CDRResult, []FieldProblem, error) {
	if !json.Valid(data) {
		return nil, nil, fmt.Errorf("pbx %scdr/searchpersonal: answer is not JSON: %w", apiPrefix, ErrPBXAPI)
	}
	r := new(CDRResult)
	problems, err := r.decodeAnswer(data)
	if err != nil {
		return nil, problems, err
	}
	return r, problems, nil
}

// rawFields returns the members of a JSON object by exact key (the last of
// duplicates, as JavaScript), or nil if raw is no object.
func rawFields(raw []byte) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

// personalAnswer is getpersonal's answer, with the extension object's raw
// fields: the init sequence compares its flags as JavaScript's == does,
// which the int fields cannot show (true is 1 to ==, and no number).
type personalAnswer struct {
	Extension *Personal `json:"extension"`
	flags     map[string]json.RawMessage
}

func (a *personalAnswer) decodeAnswer(data []byte) ([]FieldProblem, error) {
	problems := decodeLoose(data, a)
	a.flags = rawFields(rawFields(data)["extension"])
	return problems, nil
}

// globalAnswer is getpersonalglobal's answer, with its raw fields for the
// same reason.
type globalAnswer struct {
	PersonalGlobal
	flags map[string]json.RawMessage
}

func (a *globalAnswer) decodeAnswer(data []byte) ([]FieldProblem, error) {
	problems := decodeLoose(data, a)
	a.flags = rawFields(data)
	return problems, nil
}
