package bridge

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// The fleet keys: their defaults and checks, with the rest of the
// configuration's (bridge/fleet keeps none).

// validateFleet checks the fleet keys.
func (c *Config) validateFleet() []error {
	f := c.Fleet
	if !f.Enabled {
		return nil
	}
	var errs []error
	if c.JetStream.Disabled {
		errs = append(errs, errors.New("fleet.enabled: needs JetStream (jetstream.enabled): the leases live in a KV bucket"))
	}
	if f.LeaseTTL != 0 && f.LeaseTTL < 3*time.Second {
		errs = append(errs, fmt.Errorf("fleet.lease_ttl: at least 3s (default 15s), got %s", f.LeaseTTL))
	} else if err := leaseCoversLogout(f.LeaseTTL, c.ShutdownTimeout); err != nil {
		errs = append(errs, err)
	}
	ttl := cmp.Or(f.LeaseTTL, defaultLeaseTTL)
	if f.ReleaseOfflineAfter < 0 || f.ReleaseOfflineAfter > 0 && f.ReleaseOfflineAfter < ttl {
		errs = append(errs, fmt.Errorf("fleet.release_offline_after: at least fleet.lease_ttl (%s: a login needs a chance), got %s", ttl, f.ReleaseOfflineAfter))
	}
	if f.OfflineCooldown < 0 {
		errs = append(errs, fmt.Errorf("fleet.offline_cooldown: must not be negative, got %s", f.OfflineCooldown))
	}
	if f.LeaseBucket != "" && !validName(f.LeaseBucket) {
		errs = append(errs, fmt.Errorf("fleet.lease_bucket: %q is not a valid bucket name", f.LeaseBucket))
	}
	if f.LeaseBucket != "" && f.LeaseBucket == c.JetStream.CursorBucket {
		errs = append(errs, fmt.Errorf("fleet.lease_bucket: %q is also jetstream.cursor_bucket: cursors must not expire", f.LeaseBucket))
	}
	return errs
}

// fleetDefaults sets the fleet keys left zero to their defaults.
func fleetDefaults(f *FleetConfig) {
	if f.Replica == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "pbx-bridge"
		}
		f.Replica = host + "-" + strconv.Itoa(os.Getpid())
	}
	if f.LeaseBucket == "" {
		f.LeaseBucket = "pbx_bridge_leases"
	}
	if f.LeaseTTL <= 0 {
		f.LeaseTTL = defaultLeaseTTL
	}
	if f.ReleaseOfflineAfter <= 0 {
		f.ReleaseOfflineAfter = time.Minute
	}
	if f.OfflineCooldown <= 0 {
		f.OfflineCooldown = 10 * time.Minute
	}
}

// replicaName is the replica's name in a fleet, "" outside one.
func replicaName(f FleetConfig) string {
	if !f.Enabled {
		return ""
	}
	return f.Replica
}

// logoutTimeout bounds one logout: ShutdownTimeout, and in a fleet half of
// it (the half that follows the requests' at shutdown), which a lease must
// cover after fencing (leaseCoversLogout).
func (c Config) logoutTimeout() time.Duration {
	if c.Fleet.Enabled {
		return c.ShutdownTimeout / 2
	}
	return c.ShutdownTimeout
}

// leaseCoversLogout refuses a lease TTL too short for a logout. A replica
// renews each lease until its extension has logged out; but if the
// renewals fail (NATS away), the lease is fenced half a TTL after its last
// renewal and lapses at the TTL, and a logout under way by then must end
// within the other half: a logout takes up to half of shutdown_timeout, so
// lease_ttl must be at least shutdown_timeout. Zero values are the
// defaults.
func leaseCoversLogout(ttl, shutdown time.Duration) error {
	if ttl == 0 {
		ttl = defaultLeaseTTL
	}
	if shutdown <= 0 {
		shutdown = DefaultShutdownTimeout
	}
	if ttl < shutdown {
		return fmt.Errorf("fleet.lease_ttl: %s cannot cover a logout: a logout takes up to half of shutdown_timeout (%s) and must end in the half of the lease that follows fencing; "+
			"set fleet.lease_ttl to at least shutdown_timeout, or lower shutdown_timeout", ttl, shutdown)
	}
	return nil
}
