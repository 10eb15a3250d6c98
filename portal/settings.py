"""Backup Portal settings: every value comes from the environment (see README)."""

import secrets
from pathlib import Path

from django.utils.translation import gettext_lazy as _

from portal import env

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env.get_str("PORTAL_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.get_bool("DEBUG", False)


def _embedded_secret_key() -> str:
    """Generated once per data folder so sessions survive restarts of the embedded portal."""
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = env.get_str("SECRET_KEY", secret=True) or _embedded_secret_key()
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS", [])
# The address agents and downloaded credentials files use to reach this portal.
PORTAL_URL = (env.get_str("PORTAL_URL", "http://127.0.0.1:8000") or "").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_q",
    "channels",
    "portal",
    "vaults",
    "agents",
    "policies",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.middleware.DateHeaderMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.middleware.UserPreferencesMiddleware",
    "portal.middleware.CurrentTenantMiddleware",
]

ROOT_URLCONF = "portal.urls"
ASGI_APPLICATION = "portal.asgi.application"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "portal.context_processors.shell",
            ],
        },
    },
]

DATABASES = {
    "default": env.parse_database_url(
        env.get_str("DATABASE_URL", secret=True) or f"sqlite:///{DATA_DIR / 'portal.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A named file keeps ChannelsLiveServerTestCase and the worker process on one database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-portal.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.get_str("REDIS_URL", secret=True)
if REDIS_URL:
    env.validate_redis_url(REDIS_URL)
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

Q_CLUSTER = {
    "name": "backup-portal",
    "workers": env.get_int("WORKER_PROCESSES", 2, minimum=1),
    "timeout": 600,
    "retry": 900,
    "max_attempts": 3,
    "poll": 0.5,
    "catch_up": False,
    "label": "Tasks",
    **({"redis": REDIS_URL} if REDIS_URL else {"orm": "default"}),
}

# Seconds between an agent's configuration polls (it adds jitter); commands arrive sooner
# through the long poll.
AGENT_POLL_INTERVAL = env.get_int("AGENT_POLL_INTERVAL", 60, minimum=5)
# Minutes without contact after which an agent raises an "Agent offline" alert.
AGENT_OFFLINE_ALERT_MINUTES = env.get_int("AGENT_OFFLINE_ALERT_MINUTES", 60, minimum=5)

# Run queued tasks inline after commit instead of in the worker (tests, debugging).
TASKS_RUN_INLINE = env.get_bool("TASKS_RUN_INLINE", False)

AZURE_STORAGE_CONNECTION_STRING = env.get_str("AZURE_STORAGE_CONNECTION_STRING", secret=True)
# Azurite rejects the newest service versions; a pinned version keeps both backends alike.
AZURE_STORAGE_API_VERSION = env.get_str("AZURE_STORAGE_API_VERSION", "2025-11-05")
BLOB_ROOT = DATA_DIR / "blobs"
# Alert webhooks may target loopback/private addresses only when this is on (SSRF guard).
WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = env.get_bool("WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", False)
# Where operators copy offline-seed disks: <OFFLINE_SEED_DIR>/<machine id>/.
OFFLINE_SEED_DIR = Path(env.get_str("OFFLINE_SEED_DIR", str(DATA_DIR / "offline-seeds")))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
LOGIN_ATTEMPTS_PER_15_MINUTES = env.get_int("LOGIN_ATTEMPTS_PER_15_MINUTES", 10, minimum=1)

SESSION_COOKIE_SECURE = env.get_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env.get_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ja", _("Japanese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "portal" / "assets"]
# The portal serves its own static files (no CDN, no separate web server needed);
# without collectstatic (development, tests) files are found in place.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

EMAIL_BACKEND = env.get_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.get_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env.get_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env.get_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.get_str("EMAIL_HOST_PASSWORD", "", secret=True)
EMAIL_USE_TLS = env.get_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env.get_str("DEFAULT_FROM_EMAIL", "backup-portal@localhost")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.authentication.AccessTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"agent": env.get_str("AGENT_RATE_LIMIT", "6000/minute")},
    "EXCEPTION_HANDLER": "portal.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Backup Portal API",
    "DESCRIPTION": "Tenant API (/api/v1/) and agent API (/api/agent/v1/).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.get_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
