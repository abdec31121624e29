"""wirewatch.publish"""
