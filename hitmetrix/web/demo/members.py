"""The demo dating site's own SQLite file: members, messages, sign-in sessions, and the seeded fake members.

It is the *visited site's* database, not Hitmetrix's: ``<data_dir>/demo/site.db``. The seeded members are
fake and deterministic (member n is the same person on every install), so scripted attackers and the
scenario runner can name real accounts and their passwords (``seeded_members``). Passwords are stored as
scrypt hashes with their parameters; seeded ones use a cheaper cost so the first visit is not slow.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEEDED_MEMBERS = 300
SESSION_MAX_AGE_S = 7 * 24 * 3600
_SEED = 20261201
_SCRYPT_N = 2**12  # ~12 ms a check here: a realistic cost that still lets a test sign in many times
_SEED_SCRYPT_N = 2**10  # seeding 300 members stays around a second

FIRST = (
    "Anna", "Ben", "Clara", "David", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Karin", "Leo", "Maya",
    "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wim", "Xenia", "Yusuf", "Zoe",
    "Amir", "Bea", "Carl", "Dana", "Emil", "Fay", "Gil", "Hana", "Ivo", "Jule", "Kofi", "Lina", "Marek", "Nora",
)
LAST = (
    "Adler", "Berger", "Costa", "Dahl", "Eklund", "Fischer", "Garcia", "Hansen", "Ivanova", "Jensen", "Keller",
    "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quist", "Rossi", "Silva", "Tanaka", "Ueda", "Varga",
    "Weber", "Xu", "Yilmaz", "Zeller", "Brandt", "Cruz", "Dumont", "Engel",
)
CITIES = (
    "Berlin", "Lisbon", "Oslo", "Vienna", "Madrid", "Prague", "Dublin", "Lyon", "Porto", "Zurich", "Munich",
    "Ghent", "Turin", "Krakow", "Bergen", "Seville", "Leeds", "Riga", "Tallinn", "Bologna",
)
INTERESTS = (
    "hiking", "cooking", "jazz", "climbing", "photography", "chess", "running", "sailing", "pottery", "cinema",
    "gardening", "poetry", "cycling", "board-games", "yoga", "travel", "baking", "birdwatching", "karaoke",
    "museums", "surfing", "tango", "coffee", "astronomy", "knitting", "football", "reading", "skiing",
    "painting", "podcasts",
)
OPENERS = ("Looking for someone to share", "Happiest when I am", "Ask me about", "Weekends are for",
           "Will trade recipes for", "Secretly great at")
WEAK_PASSWORDS = ("password123", "qwerty2024", "letmein!", "iloveyou1", "sunshine7")


@dataclass(frozen=True)
class SeedMember:
    """A seeded member as generated: what the database holds, plus the plain password scripts may use."""

    id: int
    email: str
    password: str
    name: str
    age: int
    city: str
    phone: str
    interests: str
    bio: str


def seeded_members(count: int = SEEDED_MEMBERS) -> list[SeedMember]:
    """The deterministic fake members, id 1 … count (the same on every install)."""
    rng = random.Random(_SEED)
    members = []
    for member_id in range(1, count + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        likes = rng.sample(INTERESTS, 3)
        # One in ten uses a password from every breach list: what credential stuffing finds.
        weak = member_id % 10 == 0
        password = rng.choice(WEAK_PASSWORDS) if weak else f"{rng.choice(INTERESTS)}-{rng.randrange(10**6)}"
        members.append(SeedMember(
            id=member_id,
            email=f"{first}.{last}{member_id}@example.com".lower(),
            password=password,
            name=f"{first} {last}",
            age=rng.randrange(19, 67),
            city=rng.choice(CITIES),
            phone=f"+49 30 {rng.randrange(10**7):07d}",
            interests=", ".join(likes),
            bio=f"{rng.choice(OPENERS)} {likes[0]}. {rng.choice(OPENERS)} {likes[1]}.",
        ))
    return members


def hash_password(password: str, n: int = _SCRYPT_N) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, dklen=32)
    return f"scrypt${n}${salt.hex()}${digest.hex()}"


def password_ok(stored: str, password: str) -> bool:
    try:
        _, n, salt, digest = stored.split("$")
        found = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=8, p=1, dklen=32)
    except ValueError:
        return False
    return hmac.compare_digest(found.hex(), digest)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
  id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL, name TEXT NOT NULL,
  age INTEGER NOT NULL, city TEXT NOT NULL, phone TEXT NOT NULL, interests TEXT NOT NULL, bio TEXT NOT NULL,
  created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY, sender_id INTEGER NOT NULL, recipient_id INTEGER NOT NULL, body TEXT NOT NULL,
  created_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS messages_recipient ON messages (recipient_id);
CREATE INDEX IF NOT EXISTS messages_sender ON messages (sender_id);
CREATE TABLE IF NOT EXISTS sessions (
  token_hash TEXT PRIMARY KEY, member_id INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
"""
PUBLIC_FIELDS = "id, name, age, city, interests, bio"
_MISSING_HASH = hash_password("never a password", _SEED_SCRYPT_N)


class SiteDb:
    """The demo site's database; every method opens its own short connection, so any thread may call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = threading.Lock()
        self._seeded = False

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        return db

    def ensure(self) -> None:
        """Create and seed the file once (the first request waits for it; later ones do not)."""
        if self._seeded:
            return
        with self._ready:
            if self._seeded:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                if db.execute("SELECT COUNT(*) FROM members").fetchone()[0] == 0:
                    now_ms = int(time.time() * 1000)
                    db.executemany(
                        "INSERT INTO members VALUES (?,?,?,?,?,?,?,?,?,?)",
                        [(m.id, m.email, hash_password(m.password, _SEED_SCRYPT_N), m.name, m.age, m.city, m.phone,
                          m.interests, m.bio, now_ms) for m in seeded_members()],
                    )
            self._seeded = True

    # --- members ---------------------------------------------------------------------------------

    def create_member(self, email: str, password: str, name: str, age: int, city: str, bio: str) -> int | None:
        """The new member's id, or None when the email is taken."""
        self.ensure()
        password_hash = hash_password(password)
        try:
            with self._connect() as db:
                cursor = db.execute(
                    "INSERT INTO members (email, password_hash, name, age, city, phone, interests, bio, created_ms)"
                    " VALUES (?,?,?,?,?,'','',?,?)",
                    (email, password_hash, name, age, city, bio, int(time.time() * 1000)),
                )
                return cursor.lastrowid
        except sqlite3.IntegrityError:
            return None

    def check_password(self, email: str, password: str) -> int | None:
        """The member's id when the password is right."""
        self.ensure()
        with self._connect() as db:
            row = db.execute("SELECT id, password_hash FROM members WHERE email = ?", (email,)).fetchone()
        # A missing account costs a hash too, so the answer's timing does not say which accounts exist.
        stored = row["password_hash"] if row else _MISSING_HASH
        ok = password_ok(stored, password)
        return int(row["id"]) if row and ok else None

    def member_id_by_email(self, email: str) -> int | None:
        self.ensure()
        with self._connect() as db:
            row = db.execute("SELECT id FROM members WHERE email = ?", (email,)).fetchone()
        return int(row["id"]) if row else None

    def profile(self, member_id: int) -> dict[str, Any] | None:
        self.ensure()
        with self._connect() as db:
            row = db.execute(f"SELECT {PUBLIC_FIELDS} FROM members WHERE id = ?", (member_id,)).fetchone()
        return dict(row) if row else None

    def members(self, offset: int, limit: int) -> list[dict[str, Any]]:
        self.ensure()
        with self._connect() as db:
            rows = db.execute(f"SELECT {PUBLIC_FIELDS} FROM members ORDER BY id LIMIT ? OFFSET ?", (limit, offset))
            return [dict(r) for r in rows]

    def search(self, query: str, offset: int, limit: int) -> list[dict[str, Any]]:
        """Members whose name, city or interests contain the query (LIKE wildcards in it are literal)."""
        self.ensure()
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {PUBLIC_FIELDS} FROM members WHERE name LIKE ?1 ESCAPE '\\' OR city LIKE ?1 ESCAPE '\\'"
                " OR interests LIKE ?1 ESCAPE '\\' ORDER BY id LIMIT ?2 OFFSET ?3",
                (pattern, limit, offset),
            )
            return [dict(r) for r in rows]

    def export(self, member_id: int) -> dict[str, Any]:
        """Everything the site holds about one member (their own data export), the password hash excepted."""
        self.ensure()
        with self._connect() as db:
            row = db.execute("SELECT * FROM members WHERE id = ?", (member_id,)).fetchone()
            profile = {k: v for k, v in dict(row).items() if k != "password_hash"} if row else {}
            sent = [dict(r) for r in db.execute(
                "SELECT id, recipient_id, body, created_ms FROM messages WHERE sender_id = ? ORDER BY id",
                (member_id,))]
            received = [dict(r) for r in db.execute(
                "SELECT id, sender_id, body, created_ms FROM messages WHERE recipient_id = ? ORDER BY id",
                (member_id,))]
        return {"profile": profile, "messages_sent": sent, "messages_received": received}

    # --- messages --------------------------------------------------------------------------------

    def send_message(self, sender_id: int, recipient_id: int, body: str) -> bool:
        """False when the recipient does not exist."""
        if self.profile(recipient_id) is None:
            return False
        with self._connect() as db:
            db.execute("INSERT INTO messages (sender_id, recipient_id, body, created_ms) VALUES (?,?,?,?)",
                       (sender_id, recipient_id, body, int(time.time() * 1000)))
        return True

    def inbox(self, member_id: int) -> list[dict[str, Any]]:
        self.ensure()
        with self._connect() as db:
            rows = db.execute(
                "SELECT m.id, m.sender_id, s.name AS sender_name, m.body, m.created_ms FROM messages m"
                " JOIN members s ON s.id = m.sender_id WHERE m.recipient_id = ? ORDER BY m.id DESC LIMIT 100",
                (member_id,),
            )
            return [dict(r) for r in rows]

    # --- sign-in sessions ------------------------------------------------------------------------

    def start_session(self, member_id: int) -> str:
        token = secrets.token_urlsafe(32)
        expires_ms = int((time.time() + SESSION_MAX_AGE_S) * 1000)
        with self._connect() as db:
            db.execute("INSERT INTO sessions VALUES (?,?,?)", (_token_hash(token), member_id, expires_ms))
        return token

    def session_member(self, token: str) -> int | None:
        if not token or len(token) > 100:
            return None
        self.ensure()
        with self._connect() as db:
            row = db.execute("SELECT member_id FROM sessions WHERE token_hash = ? AND expires_ms > ?",
                             (_token_hash(token), int(time.time() * 1000))).fetchone()
        return int(row["member_id"]) if row else None

    def end_session(self, token: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))


def _token_hash(token: str) -> str:
    # A stolen database copy holds no usable session cookies.
    return hashlib.sha256(token.encode()).hexdigest()
