package main

// adviseEnroll returns the advice for the errors of package enroll
// (joining and inviting), or "".
func (c *cli) adviseEnroll(err error) string { return "" }

// adviseTLS returns the advice for the errors of package tlsbridge
// (connections, PKI mode, prompts), or "".
func (c *cli) adviseTLS(err error) string { return "" }
