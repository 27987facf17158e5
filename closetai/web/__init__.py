"""Web layer, the top of the pipeline: `create_app` (factory), the blueprints (pages, api, report, video,
similar, auth), request helpers (context, forms), guards (security) and the waitress server (server).

Nothing else in closetai imports this package. app.py at the repository root re-exports create_app, so
`flask --app app run` and `python app.py` work from a checkout.
"""

from closetai.web.factory import create_app

__all__ = ["create_app"]
