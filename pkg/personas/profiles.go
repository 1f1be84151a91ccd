package personas

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	fastjson "github.com/goccy/go-json"
)

// Why /due and claims keep a profile cache: their answers are mostly the
// personas' system prompts, which change only when an admin edits a
// persona, yet every call used to fetch each prompt from PostgreSQL, copy
// it through the driver and JSON-encode it again. Now the due and claim
// statements return only what changes from call to call (the schedule's
// columns) and the row's updated_at; the static part (email, archetype,
// prompt, module mix, cadence) comes from a bounded in-process cache keyed
// by user id and checked against updated_at, holding it decoded and as a
// ready JSON fragment. A miss (a new or edited persona, or one evicted) is
// fetched in one more statement, dueProfiles, for all missing ids at once.
//
// Correctness rests on one invariant: whenever a persona's static fields
// change, its updated_at changes. UpsertPersona is the only writer of those
// fields and moves updated_at strictly forward (at least 1 µs past the old
// value even when the store's clock stands still), so an entry whose
// updated_at equals the row's holds exactly the row's static fields. A
// manual UPDATE of those columns must bump updated_at too.

// profile is one persona's static fields, decoded and encoded.
type profile struct {
	updatedAt    time.Time
	email        string
	archetype    string
	systemPrompt string
	moduleMix    json.RawMessage
	cadence      Cadence
	// head is the persona's JSON object up to its static fields, without
	// the closing brace: {"userId":…,"email":…,…,"tickCadence":…
	head []byte
}

// profileRow is one row of dueProfiles.
type profileRow struct {
	UserID       string          `bun:"user_id"`
	UpdatedAt    time.Time       `bun:"updated_at"`
	Email        string          `bun:"email"`
	Archetype    string          `bun:"archetype"`
	SystemPrompt string          `bun:"system_prompt"`
	ModuleMix    json.RawMessage `bun:"module_mix,type:jsonb"`
	TickCadence  Cadence         `bun:"tick_cadence"`
}

// dueProfilesSQL: ?0 the user ids.
const dueProfilesSQL = `
SELECT user_id, updated_at, email, archetype, system_prompt, module_mix, tick_cadence
  FROM personas.personas
 WHERE user_id = ANY(?0::text[])`

// Bounds of the profile cache: entries, and bytes of their JSON heads (a
// prompt is at most MaxSystemPromptLen characters). Past either bound,
// arbitrary entries are evicted; an evicted persona is a miss next time.
const (
	profileCacheEntries = 50_000
	profileCacheBytes   = 64 << 20
)

type profileCache struct {
	mu    sync.Mutex
	m     map[string]*profile
	bytes int
}

func newProfileCache() *profileCache { return &profileCache{m: map[string]*profile{}} }

func (c *profileCache) get(id string, updatedAt time.Time) *profile {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.m[id]; p != nil && p.updatedAt.Equal(updatedAt) {
		return p
	}
	return nil
}

func (c *profileCache) put(id string, p *profile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[id]; old != nil {
		c.bytes -= len(old.head)
		delete(c.m, id)
	}
	for k, v := range c.m { // random order: arbitrary victims
		if len(c.m) < profileCacheEntries && c.bytes+len(p.head) <= profileCacheBytes {
			break
		}
		c.bytes -= len(v.head)
		delete(c.m, k)
	}
	c.m[id] = p
	c.bytes += len(p.head)
}

func newProfile(r *profileRow) (*profile, error) {
	head := make([]byte, 0, len(r.SystemPrompt)+len(r.Email)+len(r.UserID)+len(r.ModuleMix)+128)
	head = append(head, `{"userId":`...)
	head = AppendJSONString(head, r.UserID)
	head = append(head, `,"email":`...)
	head = AppendJSONString(head, r.Email)
	head = append(head, `,"archetype":`...)
	head = AppendJSONString(head, r.Archetype)
	head = append(head, `,"systemPrompt":`...)
	head = AppendJSONString(head, r.SystemPrompt)
	head = append(head, `,"moduleMix":`...)
	mix, err := fastjson.Marshal(r.ModuleMix) // compacts the jsonb text
	if err != nil {
		return nil, fmt.Errorf("encode module mix of %s: %w", r.UserID, err)
	}
	head = append(head, mix...)
	head = append(head, `,"tickCadence":`...)
	head = AppendJSONString(head, string(r.TickCadence))
	return &profile{
		updatedAt: r.UpdatedAt, email: r.Email, archetype: r.Archetype, systemPrompt: r.SystemPrompt,
		moduleMix: mix, cadence: r.TickCadence, head: head,
	}, nil
}

// fillProfiles completes rows (as the due or claim statement returned them)
// with their static fields, from the cache or, for the misses, from one
// dueProfiles statement. A row whose persona was deleted in between is
// dropped; one edited in between gets its newer fields.
func (s *Store) fillProfiles(ctx context.Context, rows []DuePersona) ([]DuePersona, error) {
	var missing []string
	for i := range rows {
		if p := s.profiles.get(rows[i].UserID, rows[i].UpdatedAt); p != nil {
			rows[i].setProfile(p)
		} else {
			missing = append(missing, rows[i].UserID)
		}
	}
	if len(missing) == 0 {
		return rows, nil
	}
	b := s.mustBind("dueProfiles", BindInput{PersonaIDs: missing})
	var got []profileRow
	if err := s.queryPrepared(ctx, b.Name, &got, b.Args...); err != nil {
		return rows, fmt.Errorf("read due profiles: %w", translate(err))
	}
	fresh := make(map[string]*profile, len(got))
	for i := range got {
		p, err := newProfile(&got[i])
		if err != nil {
			return rows, err
		}
		fresh[got[i].UserID] = p
		s.profiles.put(got[i].UserID, p)
	}
	out := rows[:0]
	for _, r := range rows {
		if r.profile == nil {
			p := fresh[r.UserID]
			if p == nil {
				continue // deleted since the due statement read it
			}
			r.setProfile(p)
		}
		out = append(out, r)
	}
	return out, nil
}

func (d *DuePersona) setProfile(p *profile) {
	d.profile = p
	d.Email, d.Archetype, d.SystemPrompt, d.ModuleMix, d.TickCadence = p.email, p.archetype, p.systemPrompt, p.moduleMix, p.cadence
}

// AppendJSON appends the persona as the runner's JSON object (the shape of
// its json tags; times in UTC, RFC 3339 with nanoseconds as encoding/json
// writes them), reusing the encoded static part cached with its profile.
func (d *DuePersona) AppendJSON(b []byte) []byte {
	if d.profile != nil {
		b = append(b, d.profile.head...)
	} else {
		// Not from Due or Claim (a caller built it): encode it all.
		p, err := newProfile(&profileRow{UserID: d.UserID, Email: d.Email, Archetype: d.Archetype,
			SystemPrompt: d.SystemPrompt, ModuleMix: d.ModuleMix, TickCadence: d.TickCadence})
		if err != nil || len(d.ModuleMix) == 0 {
			p, _ = newProfile(&profileRow{UserID: d.UserID, Email: d.Email, Archetype: d.Archetype,
				SystemPrompt: d.SystemPrompt, ModuleMix: json.RawMessage(`{}`), TickCadence: d.TickCadence})
		}
		b = append(b, p.head...)
	}
	b = append(b, `,"lastActiveAt":`...)
	b = appendJSONTime(b, d.LastActiveAt)
	b = append(b, `,"maxHistoryDays":`...)
	if d.MaxHistoryDays == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(*d.MaxHistoryDays), 10)
	}
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(d.Attempt), 10)
	if d.LeaseToken != "" {
		b = append(b, `,"leaseToken":`...)
		b = AppendJSONString(b, d.LeaseToken)
	}
	if d.LeaseExpiresAt != nil {
		b = append(b, `,"leaseExpiresAt":`...)
		b = appendJSONTime(b, d.LeaseExpiresAt)
	}
	return append(b, '}')
}

func appendJSONTime(b []byte, t *time.Time) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// AppendJSONString appends s as a JSON string (the store's and the
// services' hand-written encoders share it): plain printable ASCII as it
// is, anything else through the JSON encoder (as encoding/json escapes it).
func AppendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			enc, err := fastjson.Marshal(s)
			if err != nil { // not reachable for a string
				return append(b, `""`...)
			}
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
