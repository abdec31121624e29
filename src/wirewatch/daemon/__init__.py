"""wirewatch.daemon"""
