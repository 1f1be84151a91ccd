package main

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		c, err := loadConfig(env(map[string]string{"MANA_SERVICE_KEY": "dev-key-1234"}))
		require.NoError(t, err)
		require.Equal(t, 3001, c.Port)
		require.Equal(t, "http://localhost:3001", c.BaseURL)
		require.Equal(t, "admin@mana.test", c.AdminEmail)
		require.Equal(t, "mana-dev-admin-password", c.AdminPassword)
		require.Equal(t, defaultDatabaseURL, c.DatabaseURL)
		require.Equal(t, []string{"dev-key-1234"}, c.ServiceKeys)
		require.Equal(t, slog.LevelInfo, c.LogLevel)
		require.Equal(t, 15*time.Minute, c.TokenTTL)
		require.Empty(t, c.TrustedOrigins)
	})

	t.Run("JWTTTLAndTrustedOrigins", func(t *testing.T) {
		t.Parallel()
		c, err := loadConfig(env(map[string]string{
			"MANA_SERVICE_KEY": "dev-key-1234", "MANA_AUTH_DEV_JWT_TTL": "20s",
			"MANA_AUTH_DEV_TRUSTED_ORIGINS": " http://localhost:5173/ , ,https://dash.mana.test",
		}))
		require.NoError(t, err)
		require.Equal(t, 20*time.Second, c.TokenTTL)
		require.Equal(t, []string{"http://localhost:5173", "https://dash.mana.test"}, c.TrustedOrigins)
		d := c.devauth(nil)
		require.Equal(t, 20*time.Second, d.TokenTTL)
		require.Equal(t, c.TrustedOrigins, d.TrustedOrigins)
		require.NoError(t, d.Validate())
	})

	t.Run("RejectsBadJWTTTL", func(t *testing.T) {
		t.Parallel()
		for _, v := range []string{"soon", "4s", "0", "-1m", "5500ms"} {
			_, err := loadConfig(env(map[string]string{"MANA_SERVICE_KEY": "dev-key-1234", "MANA_AUTH_DEV_JWT_TTL": v}))
			require.ErrorContains(t, err, "MANA_AUTH_DEV_JWT_TTL", v)
		}
		c, err := loadConfig(env(map[string]string{"MANA_SERVICE_KEY": "dev-key-1234", "MANA_AUTH_DEV_JWT_TTL": "5s"}))
		require.NoError(t, err, "the minimum itself is accepted")
		require.Equal(t, 5*time.Second, c.TokenTTL)
	})

	t.Run("ExplicitValues", func(t *testing.T) {
		t.Parallel()
		c, err := loadConfig(env(map[string]string{
			"PORT": "4001", "MANA_SERVICE_KEY": " key-one-123 , key-two-456 ", "LOG_LEVEL": "debug",
			"MANA_AUTH_DEV_BASE_URL": "http://auth.local:4001", "DATABASE_URL": "postgres://x/y",
			"MANA_AUTH_DEV_ADMIN_EMAIL": "boss@mana.test", "MANA_AUTH_DEV_ADMIN_PASSWORD": "boss-password",
		}))
		require.NoError(t, err)
		require.Equal(t, 4001, c.Port)
		require.Equal(t, "http://auth.local:4001", c.BaseURL)
		require.Equal(t, []string{"key-one-123", "key-two-456"}, c.ServiceKeys)
		require.Equal(t, slog.LevelDebug, c.LogLevel)
		require.Equal(t, "boss@mana.test", c.devauth(nil).AdminEmail)
	})

	t.Run("BaseURLFollowsPort", func(t *testing.T) {
		t.Parallel()
		c, err := loadConfig(env(map[string]string{"PORT": "3999", "MANA_SERVICE_KEY": "dev-key-1234"}))
		require.NoError(t, err)
		require.Equal(t, "http://localhost:3999", c.BaseURL)
	})

	t.Run("RefusesProduction", func(t *testing.T) {
		t.Parallel()
		_, err := loadConfig(env(map[string]string{"NODE_ENV": "production", "MANA_SERVICE_KEY": "dev-key-1234"}))
		require.ErrorContains(t, err, "production")
	})

	t.Run("RequiresServiceKey", func(t *testing.T) {
		t.Parallel()
		_, err := loadConfig(env(map[string]string{"MANA_SERVICE_KEY": " , "}))
		require.ErrorContains(t, err, "MANA_SERVICE_KEY")
	})

	t.Run("RejectsBadPortAndLogLevel", func(t *testing.T) {
		t.Parallel()
		_, err := loadConfig(env(map[string]string{"PORT": "http", "LOG_LEVEL": "loud", "MANA_SERVICE_KEY": "dev-key-1234"}))
		require.ErrorContains(t, err, "PORT")
		require.ErrorContains(t, err, "LOG_LEVEL")
	})

	t.Run("MaskedConfigHoldsNoSecrets", func(t *testing.T) {
		t.Parallel()
		c, err := loadConfig(env(map[string]string{
			"MANA_SERVICE_KEY": "very-secret-key", "MANA_AUTH_DEV_ADMIN_PASSWORD": "very-secret-pw",
			"DATABASE_URL": "postgres://u:very-secret-db@h/d",
		}))
		require.NoError(t, err)
		for _, v := range c.masked() {
			s, _ := v.(string)
			require.NotContains(t, s, "very-secret")
		}
	})
}

func TestLoadConfigListenHost(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(env(map[string]string{"MANA_SERVICE_KEY": "dev-key-1234"}))
	require.NoError(t, err)
	require.Empty(t, c.ListenHost, "every interface by default")
	c, err = loadConfig(env(map[string]string{"MANA_SERVICE_KEY": "dev-key-1234", "LISTEN_HOST": "127.0.0.1"}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", c.ListenHost)
	_, err = loadConfig(env(map[string]string{"MANA_SERVICE_KEY": "dev-key-1234", "LISTEN_HOST": "127.0.0.1:80"}))
	require.ErrorContains(t, err, "LISTEN_HOST")
}
