//! The one schema both backends share. Written by hand: only types that SQLite and
//! PostgreSQL map identically (Text, BigInt, Integer, Bool, Binary) appear here.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        roles -> Text,
        disabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        state -> Text,
        public_der -> Binary,
        private_enc -> Binary,
        kek_id -> Text,
        created_at -> BigInt,
        activated_at -> Nullable<BigInt>,
        retired_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
        seq -> BigInt,
    }
}

diesel::table! {
    refresh_families (id) {
        id -> Text,
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        audience -> Text,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        revoked_reason -> Nullable<Text>,
        source -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    issued_access_tokens (jti) {
        jti -> Text,
        user_id -> Text,
        family_id -> Nullable<Text>,
        exp -> BigInt,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        family_id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    login_attempts (key) {
        key -> Text,
        failures -> Integer,
        window_start -> BigInt,
        locked_until -> BigInt,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> BigInt,
        event -> Text,
        actor -> Nullable<Text>,
        subject -> Nullable<Text>,
        source -> Nullable<Text>,
        detail -> Nullable<Text>,
        repeat_count -> BigInt,
        last_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    revoked_access_tokens (seq) {
        seq -> BigInt,
        jti -> Text,
        exp -> BigInt,
        revoked_at -> BigInt,
    }
}

diesel::table! {
    client_keys (id) {
        id -> Text,
        user_id -> Text,
        kty -> Text,
        fingerprint -> Text,
        public_der -> Binary,
        comment -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    assertion_replays (user_id, jti) {
        user_id -> Text,
        jti -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        confidential -> Bool,
        secret_hash -> Nullable<Text>,
        audiences -> Text,
        scopes -> Text,
        grant_types -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    scopes (name) {
        name -> Text,
        roles -> Text,
        description -> Text,
        created_at -> BigInt,
    }
}

diesel::joinable!(client_keys -> users (user_id));
diesel::joinable!(refresh_families -> users (user_id));
diesel::joinable!(refresh_tokens -> refresh_families (family_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    signing_keys,
    refresh_families,
    refresh_tokens,
    login_attempts,
    audit_log,
    revoked_access_tokens,
    client_keys,
    assertion_replays,
    clients,
    scopes,
    issued_access_tokens,
);
