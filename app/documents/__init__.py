"""Documents a case's process makes when the case closes (the processing report…), as PDF and HTML."""
