-- A database written by moodbot's store before Alembic (bot/store.py as of commit 96a538e, schema
-- PRAGMA user_version = 1): every table has rows, dumped with sqlite3.Connection.iterdump().
PRAGMA user_version = 1;
BEGIN TRANSACTION;
CREATE TABLE exempt_roles (
        guild_id INTEGER NOT NULL,
        role_id  INTEGER NOT NULL,
        PRIMARY KEY (guild_id, role_id)
    );
INSERT INTO "exempt_roles" VALUES(111,444);
CREATE TABLE feedback (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        flag_id      INTEGER NOT NULL UNIQUE REFERENCES flags (id) ON DELETE CASCADE,
        guild_id     INTEGER NOT NULL,
        namespace    TEXT NOT NULL,
        vector       BLOB NOT NULL,
        label        INTEGER NOT NULL CHECK (label IN (0, 1)),
        moderator_id INTEGER NOT NULL,
        created_at   TEXT NOT NULL
    );
INSERT INTO "feedback" VALUES(1,1,111,'enc:fp32',X'193DA13A2DF5983ECC5B8CBED4FD63BF9CCAE8BE8CDC7DBF2359763D2C8CAB3F',0,889,'2026-11-25T23:05:35.272+00:00');
INSERT INTO "feedback" VALUES(3,2,111,'enc:fp32',X'7E02FCBE71D71EBF94CCFA3EE5B9B63E6DE3D73D27336EBF85A1EFBC64FF313F',0,888,'2026-11-25T23:05:35.273+00:00');
CREATE TABLE flag_reviews (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        flag_id      INTEGER NOT NULL REFERENCES flags (id) ON DELETE CASCADE,
        moderator_id INTEGER NOT NULL,
        action       TEXT NOT NULL CHECK (action IN ('confirm', 'dismiss', 'delete')),
        old_status   TEXT NOT NULL,
        new_status   TEXT NOT NULL,
        created_at   TEXT NOT NULL
    );
INSERT INTO "flag_reviews" VALUES(1,1,888,'dismiss','open','dismissed','2026-11-25T23:05:35.271+00:00');
INSERT INTO "flag_reviews" VALUES(2,1,889,'confirm','dismissed','confirmed','2026-11-25T23:05:35.272+00:00');
INSERT INTO "flag_reviews" VALUES(3,2,888,'delete','open','deleted','2026-11-25T23:05:35.273+00:00');
CREATE TABLE flags (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        guild_id          INTEGER NOT NULL,
        channel_id        INTEGER NOT NULL,
        message_id        INTEGER NOT NULL,
        author_id         INTEGER NOT NULL,
        p_negative        REAL NOT NULL,
        excerpt           TEXT NOT NULL,
        created_at        TEXT NOT NULL,
        status            TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'confirmed', 'dismissed', 'deleted')),
        modlog_channel_id INTEGER,
        modlog_message_id INTEGER,
        vector            BLOB NOT NULL,
        namespace         TEXT NOT NULL,
        UNIQUE (guild_id, message_id)
    );
INSERT INTO "flags" VALUES(1,111,333,1001,777,0.97,'this is awful really','2026-11-25T23:05:35.253+00:00','confirmed',222,5001,X'193DA13A2DF5983ECC5B8CBED4FD63BF9CCAE8BE8CDC7DBF2359763D2C8CAB3F','enc:fp32');
INSERT INTO "flags" VALUES(2,111,333,1002,778,0.91,'meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh meh…','2026-11-25T23:05:35.258+00:00','deleted',222,5002,X'7E02FCBE71D71EBF94CCFA3EE5B9B63E6DE3D73D27336EBF85A1EFBC64FF313F','enc:fp32');
INSERT INTO "flags" VALUES(3,1152921504606846977,9,1152921504606846978,1,0.93,'unposted, open','2026-11-25T23:05:35.262+00:00','open',NULL,NULL,X'390FACBF9D4CEABE445BF3BF930FA5BFF9BDEBBFBBBB70BEB03BA2BF29E38A3E','enc:fp32');
CREATE TABLE guild_channels (
        guild_id   INTEGER NOT NULL,
        channel_id INTEGER NOT NULL,
        kind       TEXT NOT NULL CHECK (kind IN ('live', 'disabled')),
        PRIMARY KEY (guild_id, channel_id, kind)
    );
INSERT INTO "guild_channels" VALUES(111,333,'live');
INSERT INTO "guild_channels" VALUES(111,334,'disabled');
CREATE TABLE guild_settings (
        guild_id          INTEGER PRIMARY KEY,
        modlog_channel_id INTEGER,
        flag_threshold    REAL CHECK (flag_threshold IS NULL OR flag_threshold BETWEEN 0.5 AND 1.0),
        auto_flag         INTEGER NOT NULL DEFAULT 1 CHECK (auto_flag IN (0, 1))
    );
INSERT INTO "guild_settings" VALUES(111,222,0.75,0);
CREATE TABLE optouts (
        user_id    INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL
    );
INSERT INTO "optouts" VALUES(555,'2026-11-25T23:05:35.232+00:00');
INSERT INTO "optouts" VALUES(1152921504606846976,'2026-11-25T23:05:35.236+00:00');
CREATE INDEX flags_by_status ON flags (guild_id, status, id);
CREATE INDEX flags_unposted ON flags (modlog_message_id) WHERE modlog_message_id IS NULL;
CREATE INDEX feedback_by_namespace ON feedback (namespace, guild_id);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('flags',3);
INSERT INTO "sqlite_sequence" VALUES('flag_reviews',3);
INSERT INTO "sqlite_sequence" VALUES('feedback',3);
COMMIT;
