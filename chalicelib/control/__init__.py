"""The control plane: channel lifecycle, the HTTP API's use cases, ad-break schedule.

`app.py` routes call exactly one function here per request; `chalicelib.root` builds the
`Control` bundle (store, lifecycle, ports) those functions take.
"""
