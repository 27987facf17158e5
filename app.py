"""ClosetAI web app: `python app.py` serves it with waitress (CLOSETAI_HOST, CLOSETAI_PORT), `flask --app app
run` with Flask's development server, `flask --app app init-db` creates the schema. The code is closetai.web."""
from closetai.web import create_app  # noqa: F401  (flask --app app finds it here)
from closetai.web.server import main

if __name__ == "__main__":
    main()
