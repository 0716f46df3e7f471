import logging

from casework.config import Settings
from casework.web.server import serve

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
serve(Settings.from_env())
