"""wirewatch.evaluate"""
