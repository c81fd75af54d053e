package main

// adviseStores returns the advice for the errors of the trust stores
// (authkeys, knownhosts), or "".
func (c *cli) adviseStores(err error) string { return "" }

// adviseFiles returns the advice for a trust file refused by the
// strict-mode rule, or "".
func (c *cli) adviseFiles(err error) string { return "" }
