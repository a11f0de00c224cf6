"""What every xrunner service needs: settings, the JetStream event store, the projector, auth, health."""
