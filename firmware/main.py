"""Runs at boot: the button's firmware (app.py) on this device's board module."""
import app

app.main()
