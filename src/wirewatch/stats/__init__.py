"""wirewatch.stats"""
