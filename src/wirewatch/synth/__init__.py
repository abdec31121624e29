"""wirewatch.synth"""
