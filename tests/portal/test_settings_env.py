import pytest

from portal import env


def test_bool_int_and_file_secrets(monkeypatch, tmp_path):
    monkeypatch.setenv("X_FLAG", "yes")
    assert env.get_bool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "perhaps")
    with pytest.raises(env.ImproperlyConfiguredEnv, match="X_FLAG"):
        env.get_bool("X_FLAG", False)
    monkeypatch.setenv("X_NUM", "12a")
    with pytest.raises(env.ImproperlyConfiguredEnv, match="X_NUM"):
        env.get_int("X_NUM", 1)
    secret = tmp_path / "s"
    secret.write_text("from-file\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env.get_str("X_SECRET", secret=True) == "from-file"
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(env.ImproperlyConfiguredEnv, match="X_SECRET_FILE"):
        env.get_str("X_SECRET", secret=True)


def test_database_urls():
    pg = env.parse_database_url("postgres://u:p%40ss@db.local:5433/portal?sslmode=require")
    assert pg["ENGINE"].endswith("postgresql") and pg["PASSWORD"] == "p@ss" and pg["PORT"] == "5433"
    assert pg["OPTIONS"] == {"sslmode": "require"}
    assert env.parse_database_url("sqlite:////var/lib/p.db")["NAME"] == "/var/lib/p.db"
    with pytest.raises(env.ImproperlyConfiguredEnv, match="mysql"):
        env.parse_database_url("mysql://x/y")
    with pytest.raises(env.ImproperlyConfiguredEnv):
        env.validate_redis_url("http://localhost:6379")
