// Package notify is `coconut notify`: a per-user program that follows the
// daemon's event stream (GET /v1/events, as the user the kernel names) and
// posts each deny of the user's agents as an org.freedesktop.Notifications
// notification on their session bus, with the actions Review (open the
// Center's review page through a fresh login link) and Quarantine.
//
// Per agent, the first deny is shown at once and later ones are summarised
// at most once a period (a minute), so a looping agent cannot flood the
// desktop (throttle.go). What has been shown is persisted under
// $XDG_STATE_HOME/coconut/ (state.go), so after a restart of the daemon or
// of this program the stream resumes where it was: no deny is lost and
// none is shown twice.
package notify
