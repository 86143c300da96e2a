"""The `seq2seq` command line: parsing and dispatch only; the work is in the library."""
