"""What leaves the app as a file or a figure.

The bias-audit export and its figures, the patient report, explanation files and safe CSV
writing.
Import from the modules: this package re-exports nothing, so importing it stays cheap.
"""
