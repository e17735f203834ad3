package engine

// AlertJSON is the JSON shape of a Falco alert, keys in Falco's order (nlohmann's dump sorts
// them): the one definition of it. Alert.JSON writes it by hand (it is on the hot path of every
// matching event; TestAlertJSONShape holds the two together), the agent's internal alerts
// encode it and the alerts package decodes it.
type AlertJSON struct {
	Hostname     string         `json:"hostname"`
	Output       string         `json:"output"`
	OutputFields map[string]any `json:"output_fields"`
	Priority     string         `json:"priority"`
	Rule         string         `json:"rule"`
	Source       string         `json:"source"`
	// Tags are absent from Falco's internal alerts, present (maybe empty) in rule alerts.
	Tags []string `json:"tags,omitempty"`
	Time string   `json:"time"`
}

// AlertTimeLayout is the "time" of a JSON alert: UTC with nanoseconds, as Falco prints it.
const AlertTimeLayout = "2006-01-02T15:04:05.000000000Z"
