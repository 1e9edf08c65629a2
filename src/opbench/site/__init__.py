"""`opbench site`: a static, self-contained web site of every run in a store, with step detection."""
