package pbxtest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// baseTopics is the SDK's base subscription, in ascending order.
var baseTopics = []int{10000, 20007, 20008, 20010, 20015, 20047, 20048, 20049, 20053, 20065, 20066, 20082, 20104}

// sdkPlanFirmware is the first firmware version whose clients also subscribe
// to 20153 and 20154.
const sdkPlanFirmware = "37.12.0.10"

// expectedTopics is the one topic_list the SDK sends to a PBX running
// firmware version, for a login with the WebPC user agent or not: the base
// set, plus 20153 and 20154 from sdkPlanFirmware on, plus 20013 for WebPC,
// ascending.
func expectedTopics(version string, webPC bool) []int {
	topics := slices.Clone(baseTopics)
	if firmwareAtLeast(version, sdkPlanFirmware) {
		topics = append(topics, 20153, 20154)
	}
	if webPC {
		topics = append(topics, typeDesktopFlag)
	}
	slices.Sort(topics)
	return topics
}

// firmwareAtLeast compares versions as the SDK does: field by field, as
// numbers, after dropping the first field (the hardware series, so
// 30.12.0.10 is at least 37.12.0.10). A missing field counts as 0, and a
// field's value is its leading digits.
func firmwareAtLeast(version, least string) bool {
	v, l := firmwareFields(version), firmwareFields(least)
	for i := range max(len(v), len(l)) {
		a, b := fieldOr0(v, i), fieldOr0(l, i)
		if a != b {
			return a > b
		}
	}
	return true
}

func firmwareFields(version string) []int {
	parts := strings.Split(version, ".")
	out := make([]int, 0, len(parts)-1)
	for _, p := range parts[1:] {
		digits := len(p) - len(strings.TrimLeft(p, "0123456789"))
		n, _ := strconv.Atoi(p[:min(digits, 9)]) // 0 for none
		out = append(out, n)
	}
	return out
}

func fieldOr0(fields []int, i int) int {
	if i < len(fields) {
		return fields[i]
	}
	return 0
}

// topicMismatch says how topics differ from want, briefly enough for a close
// frame's reason, or "" if they are equal.
func topicMismatch(topics, want []int) string {
	for _, t := range want {
		if !slices.Contains(topics, t) {
			return fmt.Sprintf("topic %d missing", t)
		}
	}
	for _, t := range topics {
		if !slices.Contains(want, t) {
			return fmt.Sprintf("topic %d not for this firmware and user agent", t)
		}
	}
	return ""
}
