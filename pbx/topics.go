package pbx

import (
	"slices"
	"strings"
)

// baseTopics are the notification types every client subscribes to.
var baseTopics = []int{
	TypeLogin, TypeExtensionDeleted, TypeRecordFeatureCode, TypeReLogin,
	TypeWebClient, TypeRecordPermission, TypeRecordStatus, TypeCDRChanged,
	TypeLicense, TypeNATFQDN, TypeSIPRegistration, TypeInternalClient,
	TypeHotStandby,
}

// sdkPlanVersion is the first firmware that knows 20153 and 20154.
const sdkPlanVersion = "37.12.0.10"

// Topics returns the topic list the SDK subscribes with, in ascending order:
// the base set, plus 20153 and 20154 when version is at least 37.12.0.10
// (see VersionAtLeast), plus 20013 for the WebPC user agent.
func Topics(version, userAgent string) []int {
	topics := slices.Clone(baseTopics)
	if VersionAtLeast(version, sdkPlanVersion) {
		topics = append(topics, TypeSDKPlan, TypeReLogin2)
	}
	if userAgent == UserAgentWebPC {
		topics = append(topics, TypeDesktopClient)
	}
	slices.Sort(topics)
	return topics
}

// VersionAtLeast compares PBX firmware versions the way the SDK does: field by
// field after dropping the first field (the hardware series), so 30.12.0.10
// is at least 37.12.0.10. A field's value is its leading digits (0 if none,
// as for a missing field), so "12b" counts as 12. An empty version is never
// at least anything.
func VersionAtLeast(version, min string) bool {
	if strings.TrimSpace(version) == "" {
		return false
	}
	v, m := versionFields(version), versionFields(min)
	for i := 0; i < max(len(v), len(m)); i++ {
		a, b := fieldAt(v, i), fieldAt(m, i)
		if a != b {
			return a > b
		}
	}
	return true
}

func versionFields(version string) []int {
	parts := strings.Split(strings.TrimSpace(version), ".")[1:]
	fields := make([]int, len(parts))
	for i, p := range parts {
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' || n > 1e8 {
				break
			}
			n = n*10 + int(c-'0')
		}
		fields[i] = n
	}
	return fields
}

func fieldAt(fields []int, i int) int {
	if i < len(fields) {
		return fields[i]
	}
	return 0
}
