"""MQTT publisher tests against a real mosquitto."""
